//! The retry policy: backoff growth and cap, jitter bounds, `Retry-After`, giving up.

use std::cell::RefCell;
use std::time::Duration;

use healthanalyzer_source::{Error, RetryPolicy};

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        multiplier: 2,
    }
}

#[test]
fn the_cap_doubles_up_to_the_maximum_and_jitter_stays_under_it() {
    let p = policy();
    let e = Error::unavailable("timeout");
    let caps: Vec<Duration> = (1..5)
        .map(|a| p.delay(a, &e, 1.0).expect("retry"))
        .collect();
    assert_eq!(
        caps,
        [100, 200, 400, 800].map(Duration::from_millis).to_vec()
    );
    assert_eq!(p.delay(1, &e, 0.0), Some(Duration::ZERO));
    assert_eq!(p.delay(2, &e, 0.5), Some(Duration::from_millis(100)));
    let long = RetryPolicy {
        max_attempts: 50,
        ..policy()
    };
    assert_eq!(
        long.delay(40, &e, 1.0),
        Some(Duration::from_secs(1)),
        "capped, no overflow"
    );
}

#[test]
fn it_gives_up_on_errors_retrying_cannot_fix_and_when_attempts_run_out() {
    let p = policy();
    assert_eq!(
        p.delay(
            1,
            &Error::Auth {
                reason: "401".into()
            },
            0.5
        ),
        None
    );
    assert_eq!(
        p.delay(1, &Error::BadCursor { reason: "x".into() }, 0.5),
        None
    );
    assert_eq!(p.delay(5, &Error::unavailable("503"), 0.5), None);
    assert_eq!(
        RetryPolicy::none().delay(1, &Error::unavailable("503"), 0.5),
        None
    );
}

#[test]
fn retry_after_is_honoured_as_asked_and_too_long_a_wait_ends_the_retries() {
    let p = policy();
    let asked = |secs: u64| Error::Unavailable {
        reason: "429".into(),
        retry_after: Some(Duration::from_secs(secs)),
        cause: None,
    };
    assert_eq!(p.delay(1, &asked(1), 0.0), Some(Duration::from_secs(1)));
    assert_eq!(p.delay(1, &asked(2), 0.0), None, "longer than max_delay");
}

#[tokio::test]
async fn run_retries_transient_failures_and_returns_the_last_error() {
    let p = policy();
    let calls = RefCell::new(0);
    let slept = RefCell::new(Vec::new());
    let out: Result<u32, Error> = p
        .run(
            || {
                *calls.borrow_mut() += 1;
                let n = *calls.borrow();
                async move {
                    if n < 3 {
                        Err(Error::unavailable("503"))
                    } else {
                        Ok(n)
                    }
                }
            },
            |d| {
                slept.borrow_mut().push(d);
                async {}
            },
            |_, _, _| {},
        )
        .await;
    assert_eq!(out.expect("third time"), 3);
    assert_eq!(slept.borrow().len(), 2);
    assert!(slept.borrow()[1] <= Duration::from_millis(200));

    *calls.borrow_mut() = 0;
    let out: Result<u32, Error> = p
        .run(
            || {
                *calls.borrow_mut() += 1;
                async {
                    Err(Error::Auth {
                        reason: "expired".into(),
                    })
                }
            },
            |_| async {},
            |_, _, _| panic!("no retry on an auth error"),
        )
        .await;
    assert!(matches!(out, Err(Error::Auth { .. })));
    assert_eq!(*calls.borrow(), 1);

    *calls.borrow_mut() = 0;
    let out: Result<u32, Error> = p
        .run(
            || {
                *calls.borrow_mut() += 1;
                async { Err(Error::unavailable("down")) }
            },
            |_| async {},
            |_, _, _| {},
        )
        .await;
    assert!(out.is_err());
    assert_eq!(*calls.borrow(), 5, "max_attempts in all");
}

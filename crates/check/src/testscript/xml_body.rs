//! FHIR XML on the wire: an operation whose `contentType` is XML sends its body (a JSON or
//! XML fixture, read as JSON) as FHIR XML, one whose `accept` is XML (or whose `params` ask
//! `_format=xml`) asks for XML, and an XML answer is read back into JSON for the asserts.
//! A server that does not answer in XML is a finding for the server: a warning when it says
//! so (406 Not Acceptable, 415 Unsupported Media Type), an error when it ignores the ask.

use serde_json::Value;

use super::TestScript;
use super::exec::{Resp, finding};
use crate::run::Finding;
use crate::run::http::header;
use crate::scenario::{Owner, Severity};

/// The FHIR XML media type.
pub(super) const FHIR_XML: &str = "application/fhir+xml";
/// The FHIR JSON media type.
pub(super) const FHIR_JSON: &str = "application/fhir+json";

/// The formats of one operation's request and answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Formats {
    /// The body goes as FHIR XML.
    pub(super) send_xml: bool,
    /// The answer is asked for in FHIR XML.
    pub(super) accept_xml: bool,
}

/// What `code` (an R4 `accept`/`contentType`: `xml`, `json`, `none`, or a media type) means:
/// `Some(true)` XML, `Some(false)` JSON or none; `Err` a format the checker cannot speak.
fn is_xml(key: &str, code: &str) -> Result<bool, String> {
    let c = code.trim().to_ascii_lowercase();
    if c.contains("xml") {
        Ok(true)
    } else if c.contains("json") || c == "none" || c.is_empty() {
        Ok(false)
    } else {
        Err(format!(
            "the operation asks for {key} `{code}`: only FHIR JSON and FHIR XML are sent and read"
        ))
    }
}

impl Formats {
    /// An operation's formats; `Err` is why it cannot be run (Turtle, say).
    pub(super) fn of(op: &Value, params: &str) -> Result<Self, String> {
        let send_xml = match op["contentType"].as_str() {
            Some(c) => is_xml("contentType", c)?,
            None => false,
        };
        let format_xml = params
            .split(['?', '&'])
            .filter_map(|p| p.strip_prefix("_format="))
            .any(|f| f.contains("xml"));
        let accept_xml = match op["accept"].as_str() {
            Some(c) => is_xml("accept", c)?,
            None => false,
        } || format_xml;
        Ok(Self {
            send_xml,
            accept_xml,
        })
    }

    /// The request's `Accept` and (with a body) `Content-Type`, unless the script sets them.
    pub(super) fn headers(
        &self,
        has_body: bool,
        set: &[(String, String)],
    ) -> Vec<(String, String)> {
        let given = |h: &str| set.iter().any(|(k, _)| k.eq_ignore_ascii_case(h));
        let mut out = Vec::new();
        if !given("accept") {
            let accept = if self.accept_xml { FHIR_XML } else { FHIR_JSON };
            out.push(("Accept".to_owned(), accept.to_owned()));
        }
        if has_body && !given("content-type") {
            let ct = if self.send_xml { FHIR_XML } else { FHIR_JSON };
            out.push(("Content-Type".to_owned(), ct.to_owned()));
        }
        out
    }

    /// The body text: FHIR XML (converted from the JSON) or pretty JSON. `Err` says why the
    /// body has no FHIR XML form.
    pub(super) fn body_text(&self, body: Option<&Value>) -> Result<Option<String>, String> {
        let Some(b) = body else { return Ok(None) };
        if self.send_xml {
            healthanalyzer_fhir::json_to_xml(&b.to_string())
                .map(Some)
                .map_err(|e| format!("the body cannot be sent as FHIR XML: {e}"))
        } else {
            Ok(Some(serde_json::to_string_pretty(b).unwrap_or_default()))
        }
    }

    /// Reads an XML answer into JSON (`resp.body`), and the finding when the server did not
    /// speak the XML asked of it.
    pub(super) fn answer(
        &self,
        resp: &mut Resp,
        script: &TestScript,
        name: &str,
    ) -> Option<Finding> {
        let ct = header(&resp.headers, "content-type").unwrap_or_default();
        let xml_answer = ct.contains("xml") || resp.text.trim_start().starts_with("<?xml");
        if xml_answer && resp.body.is_none() && !resp.text.trim().is_empty() {
            match super::xml_to_json(&resp.text) {
                Ok(v) => resp.body = Some(v),
                Err(e) => {
                    return Some(finding(
                        script,
                        name,
                        Severity::Error,
                        format!("The answer says it is XML, but it is not FHIR R4 XML: {e}."),
                        Owner::Receiver,
                        "FHIR R4 xml.html: a FHIR XML answer is a resource in the FHIR namespace.",
                    ));
                }
            }
        }
        if !self.send_xml && !self.accept_xml {
            return None;
        }
        let what = match (self.send_xml, self.accept_xml) {
            (true, true) => "sent FHIR XML and asked for FHIR XML",
            (true, false) => "sent FHIR XML",
            _ => "asked for FHIR XML",
        };
        let refused = match resp.status {
            406 => Some("406 Not Acceptable"),
            415 => Some("415 Unsupported Media Type"),
            _ => None,
        };
        if let Some(status) = refused {
            return Some(finding(
                script,
                name,
                Severity::Warning,
                format!(
                    "The server does not speak XML: the checker {what}, and it answered {status}."
                ),
                Owner::Receiver,
                "FHIR R4 http.html#mime-type: a server may support JSON only, and says so with 406/415; the script needs XML, so what follows cannot pass on this server.",
            ));
        }
        if self.accept_xml && !xml_answer && !resp.text.trim().is_empty() {
            let got = if ct.is_empty() {
                "no Content-Type"
            } else {
                ct.as_str()
            };
            return Some(finding(
                script,
                name,
                Severity::Error,
                format!(
                    "The server does not speak XML: the checker {what} (Accept: {FHIR_XML}), and it answered {got} with status {}.",
                    resp.status
                ),
                Owner::Receiver,
                "FHIR R4 http.html#mime-type: the client names the format it wants (Accept, _format); a server that cannot give it answers 406 Not Acceptable, not another format.",
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn codes_and_media_types_choose_the_format() {
        let f = Formats::of(&json!({"contentType": "xml", "accept": "json"}), "").unwrap();
        assert_eq!((f.send_xml, f.accept_xml), (true, false));
        let f = Formats::of(&json!({"accept": "application/fhir+xml"}), "").unwrap();
        assert!(f.accept_xml);
        let f = Formats::of(&json!({}), "?_format=xml&x=1").unwrap();
        assert!(f.accept_xml && !f.send_xml);
        let f = Formats::of(&json!({"accept": "none"}), "").unwrap();
        assert_eq!(f, Formats::default());
        let e = Formats::of(&json!({"accept": "ttl"}), "").unwrap_err();
        assert!(e.contains("accept `ttl`"), "{e}");
    }

    #[test]
    fn headers_follow_the_format_unless_the_script_sets_them() {
        let f = Formats {
            send_xml: true,
            accept_xml: true,
        };
        assert_eq!(
            f.headers(true, &[]),
            [
                ("Accept".to_owned(), FHIR_XML.to_owned()),
                ("Content-Type".to_owned(), FHIR_XML.to_owned())
            ]
        );
        let set = [("accept".to_owned(), "x".to_owned())];
        assert_eq!(f.headers(false, &set), []);
        assert_eq!(
            Formats::default().headers(false, &[]),
            [("Accept".to_owned(), FHIR_JSON.to_owned())]
        );
    }

    #[test]
    fn a_json_body_goes_as_fhir_xml() {
        let f = Formats {
            send_xml: true,
            accept_xml: false,
        };
        let text = f
            .body_text(Some(&json!({"resourceType": "Patient", "active": true})))
            .unwrap()
            .unwrap();
        assert!(
            text.contains("<Patient xmlns=\"http://hl7.org/fhir\">"),
            "{text}"
        );
        let e = f
            .body_text(Some(&json!({"resourceType": "Patient", "bad": 1})))
            .unwrap_err();
        assert!(e.contains("cannot be sent as FHIR XML"), "{e}");
    }
}

//! The JSON form of a measurement is a format other programs and stores read: pin it.

#![allow(clippy::unwrap_used)] // In tests a panic is a failure with a message.

use healthanalyzer_model::{
    BodyPosition, BodySite, Catalog, Context, CuffSize, DateTime, DeviceRef, Identifier,
    Measurement, Provenance, Validator, Value, parse_decimal,
};

#[test]
fn blood_pressure_in_kpa_normalised() {
    let mut m = Measurement::new(
        Provenance::new("omron-csv", "2024-03-31T08:15")
            .with_payload("text/csv", "31.03.2024,08:15,16.0,10.7,61"),
        Identifier::cpr("0101901234"),
        "blood-pressure",
        Value::blood_pressure(
            parse_decimal("16.0").unwrap(),
            parse_decimal("10.7").unwrap(),
        ),
        DateTime::parse("2024-03-31T08:15:00+02:00").unwrap(),
    );
    if let Value::Components(cs) = &mut m.value {
        for c in cs {
            if let healthanalyzer_model::ComponentValue::Quantity(o) = &mut c.value {
                o.quantity.unit = "kPa".into();
            }
        }
    }
    m.device = Some(DeviceRef {
        manufacturer: Some("OMRON".into()),
        model: Some("M7 Intelli IT".into()),
        ..DeviceRef::default()
    });
    m.context = Context {
        body_position: Some(BodyPosition::Sitting),
        cuff_size: Some(CuffSize::Adult),
        site: Some(BodySite::LeftArm),
        ..Context::default()
    };
    let m = Validator::new(Catalog::builtin())
        .at("2024-04-01T00:00:00Z".parse().unwrap())
        .normalize(m)
        .unwrap();
    insta::assert_snapshot!(serde_json::to_string_pretty(&m).unwrap());
}

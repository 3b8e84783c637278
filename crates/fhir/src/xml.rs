//! FHIR XML, read into FHIR JSON.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fhirbolt::FhirReleases;
use fhirbolt::element::Element;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

use crate::error::{Error, Result};
use crate::observation::MAX_RESOURCE_BYTES;

/// A FHIR R4 resource written in FHIR XML, as FHIR JSON text: read through fhirbolt's
/// generic element model in Strict mode (an element R4 does not define is an error), with
/// the same size bound as the JSON readers. So that the JSON readers and
/// [`check_strict`](crate::check_strict) judge what came as XML (a TestScript, a fixture).
///
/// ```
/// let json = healthanalyzer_fhir::xml_to_json(
///     r#"<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><active value="true"/></Patient>"#,
/// )?;
/// let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
/// assert_eq!(v["resourceType"], "Patient");
/// assert_eq!(v["active"], true);
/// # Ok::<(), healthanalyzer_fhir::Error>(())
/// ```
///
/// # Errors
/// [`Error::TooLarge`] over the bound; [`Error::Structure`] for what is not FHIR R4 XML
/// (fhirbolt panics on some input: that is caught and is this error too).
pub fn xml_to_json(xml: &str) -> Result<String> {
    if xml.len() > MAX_RESOURCE_BYTES {
        return Err(Error::TooLarge {
            path: "Resource".into(),
            reason: format!(
                "{} bytes, more than the limit of {MAX_RESOURCE_BYTES}",
                xml.len()
            ),
        });
    }
    let config = DeserializationConfig {
        mode: DeserializationMode::Strict,
    };
    let converted = catch_unwind(AssertUnwindSafe(|| {
        let element: Element<{ FhirReleases::R4 }> = fhirbolt::xml::from_str(xml, Some(config))
            .map_err(|e| Error::structure("Resource", format!("not FHIR R4 XML: {e}")))?;
        fhirbolt::json::to_string(&element, None)
            .map_err(|e| Error::structure("Resource", format!("no FHIR JSON form: {e}")))
    }));
    converted.unwrap_or_else(|_| {
        Err(Error::structure(
            "Resource",
            "the FHIR XML reader failed on this input",
        ))
    })
}

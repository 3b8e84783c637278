//! FHIR XML, read into FHIR JSON, and FHIR JSON written as FHIR XML.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fhirbolt::FhirReleases;
use fhirbolt::element::Element;
use fhirbolt::serde::{DeserializationConfig, DeserializationMode};

use crate::error::{Error, Result};
use crate::observation::MAX_RESOURCE_BYTES;

/// The deepest nesting of objects and arrays (JSON) or elements (XML) converted: FHIR
/// resources nest far less, and the converters recurse.
pub const MAX_XML_DEPTH: usize = 100;

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
    let xml = &utf8_declared(xml);
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

/// A FHIR R4 resource written in FHIR JSON, as FHIR XML text (`xmlns="http://hl7.org/fhir"`):
/// read through fhirbolt's generic element model in Strict mode, as [`xml_to_json`] reads the
/// other way, with the same size bound and a nesting bound of [`MAX_XML_DEPTH`]. So that a JSON
/// fixture can be sent as XML and an XPath can be evaluated over a JSON answer.
///
/// ```
/// let xml = healthanalyzer_fhir::json_to_xml(r#"{"resourceType":"Patient","id":"p1","active":true}"#)?;
/// assert!(xml.contains(r#"<Patient xmlns="http://hl7.org/fhir">"#), "{xml}");
/// assert!(xml.contains(r#"<active value="true"/>"#), "{xml}");
/// # Ok::<(), healthanalyzer_fhir::Error>(())
/// ```
///
/// # Errors
/// [`Error::TooLarge`] over the size or nesting bound; [`Error::Structure`] for what is not
/// FHIR R4 JSON (a panic of fhirbolt's reader is caught and is this error too).
pub fn json_to_xml(json: &str) -> Result<String> {
    if json.len() > MAX_RESOURCE_BYTES {
        return Err(Error::TooLarge {
            path: "Resource".into(),
            reason: format!(
                "{} bytes, more than the limit of {MAX_RESOURCE_BYTES}",
                json.len()
            ),
        });
    }
    if json_depth(json) > MAX_XML_DEPTH {
        return Err(Error::TooLarge {
            path: "Resource".into(),
            reason: format!("nested deeper than {MAX_XML_DEPTH} levels"),
        });
    }
    let config = DeserializationConfig {
        mode: DeserializationMode::Strict,
    };
    let converted = catch_unwind(AssertUnwindSafe(|| {
        let element: Element<{ FhirReleases::R4 }> =
            fhirbolt::json::from_str(json, Some(config))
                .map_err(|e| Error::structure("Resource", format!("not FHIR R4 JSON: {e}")))?;
        fhirbolt::xml::to_string(&element, None)
            .map_err(|e| Error::structure("Resource", format!("no FHIR XML form: {e}")))
    }));
    converted.unwrap_or_else(|_| {
        Err(Error::structure(
            "Resource",
            "the FHIR JSON reader failed on this input",
        ))
    })
}

/// The text with an XML declaration's `encoding="utf-8"` (any case: XML 1.0 section 4.3.3 says
/// encoding names are matched case-insensitively) written `UTF-8`, the only spelling
/// fhirbolt's reader takes. Servers write `utf-8` (SEKMET does).
fn utf8_declared(xml: &str) -> std::borrow::Cow<'_, str> {
    let start = xml.trim_start();
    let Some(end) = start.strip_prefix("<?xml").and_then(|_| start.find("?>")) else {
        return xml.into();
    };
    let decl = &start[..end];
    for quote in ['"', '\''] {
        let key = format!("encoding={quote}");
        if let Some(at) = decl.find(&key) {
            let value_at = at + key.len();
            if let Some(len) = decl[value_at..].find(quote) {
                let value = &decl[value_at..value_at + len];
                if value.eq_ignore_ascii_case("utf-8") && value != "UTF-8" {
                    let from = xml.len() - start.len() + value_at;
                    return format!("{}UTF-8{}", &xml[..from], &xml[from + len..]).into();
                }
            }
        }
    }
    xml.into()
}

/// The deepest nesting of `{`/`[` outside strings in a JSON text.
fn json_depth(json: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_case_utf8_declaration_is_read() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><Patient xmlns="http://hl7.org/fhir"><active value="true"/></Patient>"#;
        assert!(utf8_declared(xml).contains(r#"encoding="UTF-8""#));
        assert!(xml_to_json(xml).is_ok());
        let single = "<?xml version='1.0' encoding='Utf-8'?><a/>";
        assert_eq!(
            utf8_declared(single),
            "<?xml version='1.0' encoding='UTF-8'?><a/>"
        );
        assert_eq!(utf8_declared("<a/>"), "<a/>");
        let latin = r#"<?xml version="1.0" encoding="ISO-8859-1"?><a/>"#;
        assert_eq!(utf8_declared(latin), latin);
    }

    #[test]
    fn json_depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(r#"{"a":[{"b":"[[[{{"}]}"#), 3);
        assert_eq!(json_depth(r#"{"a":"\"[["}"#), 1);
        assert_eq!(json_depth("1"), 0);
    }
}

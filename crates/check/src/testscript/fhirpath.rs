//! FHIRPath for TestScripts, behind one small module so the engine can be swapped.
//!
//! The engine is [`octofhir-fhirpath`](https://crates.io/crates/octofhir-fhirpath) 0.4.57 (pinned:
//! 0.5.x needs rustc 1.98) with `EmptyModelProvider`: it reads FHIR JSON as it is and knows no FHIR
//! types. So:
//!
//! - type tests on data types (`is(Coding)`, `ofType(CodeableConcept)`, `as Reference`…) and on
//!   FHIR primitive types (`is(boolean)`, `is(FHIR.string)`) cannot be answered:
//!   [`FhirPath::evaluate`] refuses them with [`Evaluation::Unsupported`] before evaluating (a
//!   `descendants().where($this.is(Coding)).all(…)` over untyped nodes would be vacuously true).
//!   An unknown type name (`is(coding)`: types are case-sensitive) is refused too. Resource types
//!   (`ofType(Patient)`) and System types (`is(System.Boolean)`, `is(Boolean)`) are left to the
//!   engine.
//! - decimals go through `f64` inside the engine. Where the result is an element of the input
//!   reached by a plain path (`Observation.valueQuantity.value`), [`Item::Decimal`] holds its JSON
//!   text (`72.50`); elsewhere the engine's decimal, written out.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use healthanalyzer_check::testscript::fhirpath::{Evaluation, FhirPath, Item};
//! let fp = FhirPath::new().await;
//! let obs = serde_json::json!({"resourceType": "Observation", "status": "final"});
//! let Evaluation::Items(items) = fp.evaluate("Observation.status = 'final'", &obs).await else {
//!     panic!("not evaluated");
//! };
//! assert_eq!(items, [Item::Boolean(true)]);
//! assert!(matches!(
//!     fp.evaluate("Observation.code.coding.is(Coding)", &obs).await,
//!     Evaluation::Unsupported(_)
//! ));
//! # });
//! ```

use std::sync::{Arc, LazyLock};

use octofhir_fhir_model::EmptyModelProvider;
use octofhir_fhirpath::{
    Collection, EvaluationContext, FhirPathEngine, FhirPathValue, create_function_registry,
};
use regex::Regex;
use serde_json::Value;

use crate::ElementPath;

/// The longest expression evaluated (a bound on parser recursion).
const MAX_EXPRESSION_CHARS: usize = 4_096;

/// A FHIRPath engine without a FHIR type model; build one per run and evaluate many expressions.
pub struct FhirPath {
    engine: Result<FhirPathEngine, String>,
    model: Arc<EmptyModelProvider>,
}

impl std::fmt::Debug for FhirPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirPath")
            .field(
                "engine",
                &self.engine.as_ref().map(|_| "octofhir-fhirpath 0.4.57"),
            )
            .finish()
    }
}

/// One item of a FHIRPath result.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// A decimal, as text: the input's JSON text where the result is an element reached by a
    /// plain path, else the engine's value written out.
    Decimal(String),
    /// A string (FHIR `string`, `code`, `id`, `uri`… alike: the engine has no type model).
    String(String),
    /// A date, as written (`2014-01-01`, no `@`).
    Date(String),
    /// A date and time, as written (no `@`).
    DateTime(String),
    /// A time, as written (no `@T`).
    Time(String),
    /// A quantity: its value as text and its unit.
    Quantity {
        /// The value.
        value: String,
        /// The unit (a UCUM code or a calendar word), if any.
        unit: Option<String>,
    },
    /// An element or resource, as JSON.
    Node(Value),
}

impl Item {
    /// The item as text, as an assert compares it: strings unquoted, dates without `@`, a
    /// quantity as `value 'unit'`, an element as compact JSON.
    pub fn text(&self) -> String {
        match self {
            Self::Boolean(b) => b.to_string(),
            Self::Integer(i) => i.to_string(),
            Self::Decimal(s)
            | Self::String(s)
            | Self::Date(s)
            | Self::DateTime(s)
            | Self::Time(s) => s.clone(),
            Self::Quantity { value, unit } => match unit {
                Some(u) => format!("{value} '{u}'"),
                None => value.clone(),
            },
            Self::Node(v) => v.to_string(),
        }
    }
}

/// What evaluating an expression gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluation {
    /// The result collection, in order.
    Items(Vec<Item>),
    /// The expression does not parse (the script's fault); the text is why.
    Syntax(String),
    /// Evaluation failed (a wrong singleton, a type error, a function the engine lacks); the text
    /// is the engine's reason.
    Failed(String),
    /// The engine cannot answer this truthfully (a type test on a data type, an unknown type
    /// name, no engine); the text says why. Never to be read as a pass.
    Unsupported(String),
}

impl FhirPath {
    /// Builds the engine (octofhir-fhirpath with all its functions and no type model). If it
    /// cannot be built, every evaluation is [`Evaluation::Unsupported`] saying why.
    pub async fn new() -> Self {
        let model = Arc::new(EmptyModelProvider);
        let engine = FhirPathEngine::new(Arc::new(create_function_registry()), model.clone())
            .await
            .map_err(|e| format!("the FHIRPath engine could not be built: {e}"));
        Self { engine, model }
    }

    /// Evaluates `expression` over `root` (a resource, or any JSON element); `%resource`,
    /// `%context` and `$this` are `root`.
    pub async fn evaluate(&self, expression: &str, root: &Value) -> Evaluation {
        self.evaluate_at(None, expression, root).await
    }

    /// Evaluates `context` over `root` first (when given) and then `expression` over its result.
    pub async fn evaluate_at(
        &self,
        context: Option<&str>,
        expression: &str,
        root: &Value,
    ) -> Evaluation {
        let engine = match &self.engine {
            Ok(e) => e,
            Err(why) => return Evaluation::Unsupported(why.clone()),
        };
        for e in context.iter().copied().chain([expression]) {
            if e.chars().count() > MAX_EXPRESSION_CHARS {
                return Evaluation::Unsupported(format!(
                    "the expression is longer than {MAX_EXPRESSION_CHARS} characters"
                ));
            }
            if let Some(why) = type_test_refusal(e) {
                return Evaluation::Unsupported(why);
            }
        }
        let mut input = Collection::single(FhirPathValue::resource(root.clone()));
        if let Some(c) = context {
            match self.run(engine, c, input).await {
                Ok(r) => input = r,
                Err(e) => return e,
            }
        }
        match self.run(engine, expression, input).await {
            Ok(r) => Evaluation::Items(items(r, expression, root)),
            Err(e) => e,
        }
    }

    async fn run(
        &self,
        engine: &FhirPathEngine,
        expression: &str,
        input: Collection,
    ) -> Result<Collection, Evaluation> {
        let plan = engine
            .compile_plan(expression)
            .map_err(|e| Evaluation::Syntax(e.to_string()))?;
        let ctx = EvaluationContext::new(input, self.model.clone(), None, None, None);
        engine
            .evaluate_plan(&plan, &ctx)
            .await
            .map(|r| r.value)
            .map_err(|e| Evaluation::Failed(e.to_string()))
    }
}

/// The R4 complex data types (and the abstract ones a type test may name): the engine cannot tell
/// these apart on untyped JSON.
const DATA_TYPES: &[&str] = &[
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "BackboneElement",
    "CodeableConcept",
    "Coding",
    "ContactDetail",
    "ContactPoint",
    "Contributor",
    "Count",
    "DataRequirement",
    "Distance",
    "Dosage",
    "Duration",
    "Element",
    "ElementDefinition",
    "Expression",
    "Extension",
    "HumanName",
    "Identifier",
    "MarketingStatus",
    "Meta",
    "Money",
    "MoneyQuantity",
    "Narrative",
    "ParameterDefinition",
    "Period",
    "Population",
    "ProdCharacteristic",
    "ProductShelfLife",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "RelatedArtifact",
    "SampledData",
    "Signature",
    "SimpleQuantity",
    "SubstanceAmount",
    "Timing",
    "TriggerDefinition",
    "UsageContext",
    "xhtml",
];

/// The R4 primitive types: without a model the engine types JSON primitives as System types only.
const PRIMITIVES: &[&str] = &[
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
];

/// Why a type test in `expression` cannot be answered without a type model, if one is there.
fn type_test_refusal(expression: &str) -> Option<String> {
    static STRINGS: LazyLock<Option<Regex>> =
        LazyLock::new(|| Regex::new(r"'(?:[^'\\]|\\.)*'|//[^\n]*|/\*(?s:.*?)\*/").ok());
    static TESTS: LazyLock<Option<Regex>> = LazyLock::new(|| {
        Regex::new(
            r"(?:\b(is|as|ofType)\s*\(\s*([A-Za-z_.`]+)\s*\))|(?:\s(is|as)\s+([A-Za-z_.`]+))",
        )
        .ok()
    });
    let (Some(strings), Some(tests)) = (STRINGS.as_ref(), TESTS.as_ref()) else {
        return Some("the type-test scanner could not be built".to_owned());
    };
    let bare = strings.replace_all(expression, "''");
    for c in tests.captures_iter(&bare) {
        let (Some(func), Some(name)) = (c.get(1).or(c.get(3)), c.get(2).or(c.get(4))) else {
            continue;
        };
        let name = name.as_str().replace('`', "");
        if name.starts_with("System.") {
            continue;
        }
        let short = name.strip_prefix("FHIR.").unwrap_or(&name);
        let call = format!("{}({short})", func.as_str());
        if DATA_TYPES.contains(&short) {
            return Some(format!(
                "`{call}` tests a FHIR data type, and the FHIRPath engine here has no FHIR type \
                 model (octofhir-fhirpath with EmptyModelProvider): it could not tell a {short} \
                 from any other element, so the result would not mean anything"
            ));
        }
        if PRIMITIVES.contains(&short) {
            return Some(format!(
                "`{call}` tests a FHIR primitive type, and the FHIRPath engine here has no FHIR \
                 type model (octofhir-fhirpath with EmptyModelProvider): it answers false for a \
                 {short} element outside a choice (`Patient.active.is(boolean)`), so the result \
                 would not mean anything"
            ));
        }
        let upper = short
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_uppercase());
        if !upper {
            let hint = DATA_TYPES
                .iter()
                .chain(PRIMITIVES)
                .find(|t| t.eq_ignore_ascii_case(short))
                .map(|t| format!(" (FHIR type names are case-sensitive: `{t}`?)"))
                .unwrap_or_default();
            return Some(format!(
                "`{call}` names no FHIR R4 type{hint}: the test matches nothing, so an assert \
                 built on it could never fail"
            ));
        }
    }
    None
}

/// The engine's result as items; decimals reached by a plain path take their JSON text.
fn items(result: Collection, expression: &str, root: &Value) -> Vec<Item> {
    let mut out: Vec<Item> = result.into_iter().flat_map(item).collect();
    if out.iter().any(|i| matches!(i, Item::Decimal(_))) {
        decimal_texts(&mut out, expression, root);
    }
    out
}

fn item(v: FhirPathValue) -> Vec<Item> {
    match v {
        FhirPathValue::Boolean(b, _, _) => vec![Item::Boolean(b)],
        FhirPathValue::Integer(i, _, _) => vec![Item::Integer(i)],
        FhirPathValue::Decimal(d, _, _) => vec![Item::Decimal(d.normalize().to_string())],
        FhirPathValue::String(s, _, _) => vec![Item::String(s)],
        FhirPathValue::Date(d, _, _) => vec![Item::Date(d.to_string())],
        FhirPathValue::DateTime(d, _, _) => vec![Item::DateTime(d.to_string())],
        FhirPathValue::Time(t, _, _) => vec![Item::Time(t.to_string())],
        FhirPathValue::Quantity {
            value, unit, code, ..
        } => vec![Item::Quantity {
            value: value.normalize().to_string(),
            unit: code.or(unit),
        }],
        FhirPathValue::Collection(c) => c.into_iter().flat_map(item).collect(),
        FhirPathValue::Empty => Vec::new(),
        other @ FhirPathValue::Resource(..) => vec![Item::Node(other.to_json_value())],
    }
}

/// Replaces the engine's decimals by the input's JSON text when `expression` is a plain path
/// (names, dots, `[n]`; a leading resource type) reaching as many numbers as the result holds,
/// each equal to the engine's value.
fn decimal_texts(out: &mut [Item], expression: &str, root: &Value) {
    let e = expression.trim();
    let e = match root["resourceType"].as_str() {
        Some(t) => e
            .strip_prefix(t)
            .and_then(|rest| rest.strip_prefix('.'))
            .unwrap_or(e),
        None => e,
    };
    if e.contains('=') {
        return;
    }
    let Ok(path) = ElementPath::parse(e) else {
        return;
    };
    let nodes = path.eval(root);
    if nodes.len() != out.len() {
        return;
    }
    for (item, node) in out.iter_mut().zip(nodes) {
        if let (Item::Decimal(d), Value::Number(n)) = (&*item, node) {
            let same = match (d.parse::<f64>(), n.as_f64()) {
                (Ok(a), Some(b)) => a == b,
                _ => false,
            };
            if same {
                *item = Item::Decimal(n.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    async fn eval(e: &str, v: &Value) -> Evaluation {
        FhirPath::new().await.evaluate(e, v).await
    }

    #[tokio::test]
    async fn paths_booleans_and_decimal_text() {
        let obs: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","status":"final","valueQuantity":{"value":72.50,"unit":"kg"},
                "component":[{"valueQuantity":{"value":0.1}},{"valueQuantity":{"value":120}}]}"#,
        )
        .unwrap();
        assert_eq!(
            eval("Observation.valueQuantity.value", &obs).await,
            Evaluation::Items(vec![Item::Decimal("72.50".into())])
        );
        assert_eq!(
            eval("status", &obs).await,
            Evaluation::Items(vec![Item::String("final".into())])
        );
        assert_eq!(
            eval("component.valueQuantity.value.count() = 2", &obs).await,
            Evaluation::Items(vec![Item::Boolean(true)])
        );
        assert_eq!(
            eval("component[0].valueQuantity.value", &obs).await,
            Evaluation::Items(vec![Item::Decimal("0.1".into())])
        );
        assert_eq!(
            eval("Observation.issued", &obs).await,
            Evaluation::Items(vec![])
        );
    }

    #[tokio::test]
    async fn syntax_errors_and_type_tests_are_told_apart() {
        let p = json!({"resourceType": "Patient", "id": "p"});
        assert!(matches!(
            eval("Patient.name.where(", &p).await,
            Evaluation::Syntax(_)
        ));
        for e in [
            "Patient.descendants().where($this.is(Coding)).all(code.exists())",
            "Patient.identifier.ofType(Identifier)",
            "Patient.managingOrganization as Reference",
            "Patient.x.is(FHIR.CodeableConcept)",
            "Patient.active.is(boolean)",
            "Patient.active is FHIR.boolean",
        ] {
            let Evaluation::Unsupported(why) = eval(e, &p).await else {
                panic!("{e} was evaluated");
            };
            assert!(why.contains("no FHIR type model"), "{e}: {why}");
        }
        let Evaluation::Unsupported(why) = eval(
            "Patient.descendants().where($this.is(coding)).exists().not()",
            &p,
        )
        .await
        else {
            panic!("is(coding) was evaluated");
        };
        assert!(why.contains("`Coding`?"), "{why}");
        // Inside a string it is text, and resource types are the engine's.
        assert_eq!(
            eval("'is(Coding)'.length() > 0 and Patient.is(Patient)", &p).await,
            Evaluation::Items(vec![Item::Boolean(true)])
        );
    }
}

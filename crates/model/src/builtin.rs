//! The built-in kinds. One entry per kind; `docs/catalog.md` lists them as a table.
//!
//! Sources for the codes: LOINC and the HL7 FHIR R4 vital-signs profiles; SNOMED CT as used in
//! the HL7 R4 examples and HL7 Norway's VkpObservation; IEEE 11073-10101 codes as partition 2
//! (SCADA) × 65536 + term code, as in the HL7 Personal Health Device IG and dk-core's
//! IEEEBasicObservation value set; NPU and DNK codes from the FUT infrastructure's code system
//! `urn:oid:1.2.208.176.2.1` and dk-core's NPUBasicObservation value set; MedCom MCS codes from
//! the FUT infrastructure's `urn:oid:1.2.208.184.100.8`; NLK from VkpObservation's table.
//! `crates/model/tests/national_codes.rs` checks each code against the definitions it came
//! from. An NPU code is listed under both system URIs it is sent with in Denmark (the Danish
//! OID and dk-core's `http://npu-terminology.org`), and under Norway's NLK where HL7 Norway
//! uses it.

use std::borrow::Cow;

use crate::catalog::{
    Coding, ComponentDef, ComponentId, Constraint, KindDef, KindId, Range, UnitDef, ValueSpec,
};
use crate::identifier::systems::{LOINC, MDC, MEDCOM, NLK, NPU, NPU_URI, SNOMED};
use crate::quantity::{Conversion, Decimal, UnitCode};

/// An NPU code, with the UCUM unit it names, under both system URIs it is sent with in Denmark
/// (see the module doc).
fn npu(code: &'static str, display: &'static str, unit: &'static str) -> [Coding; 2] {
    [
        cu(NPU, code, display, unit),
        cu(NPU_URI, code, display, unit),
    ]
}

/// `codings` followed by each NPU code's codings.
fn with_npu<const N: usize>(mut codings: Vec<Coding>, npus: [[Coding; 2]; N]) -> Vec<Coding> {
    codings.extend(npus.into_iter().flatten());
    codings
}

fn c(system: &'static str, code: &'static str, display: &'static str) -> Coding {
    Coding {
        system: Cow::Borrowed(system),
        code: Cow::Borrowed(code),
        display: Some(Cow::Borrowed(display)),
        unit: None,
    }
}

/// A coding that names its unit (see [`Coding::unit`]).
fn cu(
    system: &'static str,
    code: &'static str,
    display: &'static str,
    unit: &'static str,
) -> Coding {
    Coding {
        unit: Some(Cow::Borrowed(unit)),
        ..c(system, code, display)
    }
}

fn unit(code: &'static str, to_canonical: Conversion, aliases: &[&'static str]) -> UnitDef {
    UnitDef {
        code: UnitCode::from_static(code),
        to_canonical,
        aliases: aliases.iter().map(|a| Cow::Borrowed(*a)).collect(),
    }
}

/// `mantissa × 10^-scale`.
const fn dec(mantissa: i64, scale: u32) -> Decimal {
    Decimal::from_parts(
        (mantissa.unsigned_abs() & 0xFFFF_FFFF) as u32,
        ((mantissa.unsigned_abs() >> 32) & 0xFFFF_FFFF) as u32,
        0,
        mantissa < 0,
        scale,
    )
}

fn range(min: Decimal, max: Decimal) -> Option<Range> {
    Some(Range { min, max })
}

fn spec(canonical: &'static str, units: Vec<UnitDef>, range: Option<Range>) -> ValueSpec {
    ValueSpec {
        unit: UnitCode::from_static(canonical),
        units,
        range,
    }
}

fn kind(
    id: &'static str,
    display: &'static str,
    category: &'static str,
    codings: Vec<Coding>,
    value: ValueSpec,
) -> KindDef {
    KindDef {
        id: KindId::from_static(id),
        display: Cow::Borrowed(display),
        category: Cow::Borrowed(category),
        codings,
        value: Some(value),
        components: Vec::new(),
        constraints: Vec::new(),
    }
}

const ID: Conversion = Conversion::IDENTITY;

fn pressure_units() -> Vec<UnitDef> {
    vec![
        unit("mm[Hg]", ID, &["mmHg", "mm Hg", "mm[hg]", "mmhg"]),
        // 1 mm[Hg] = 133.322387415 Pa, so kPa -> mm[Hg] is × 1000 ÷ 133.322387415.
        unit(
            "kPa",
            Conversion {
                offset: Decimal::ZERO,
                numerator: dec(1000, 0),
                denominator: dec(133_322_387_415, 9),
            },
            &["kpa"],
        ),
    ]
}

fn per_minute(aliases: &[&'static str]) -> Vec<UnitDef> {
    vec![unit("/min", ID, aliases)]
}

fn mass_units() -> Vec<UnitDef> {
    vec![
        unit("kg", ID, &["kilogram", "kilograms", "kgs", "KG", "Kg"]),
        unit("g", Conversion::factor(dec(1, 3)), &["gram", "grams"]),
        unit(
            "[lb_av]",
            Conversion::factor(dec(45_359_237, 8)),
            &["lb", "lbs", "pound", "pounds", "[lb_us]"],
        ),
        unit(
            "[oz_av]",
            Conversion::factor(dec(28_349_523_125, 12)),
            &["oz", "ounce", "ounces"],
        ),
    ]
}

fn length_units() -> Vec<UnitDef> {
    vec![
        unit("cm", ID, &["centimeter", "centimeters", "CM"]),
        unit("m", Conversion::factor(dec(100, 0)), &["meter", "meters"]),
        unit("mm", Conversion::factor(dec(1, 1)), &["millimeter"]),
        unit(
            "[in_i]",
            Conversion::factor(dec(254, 2)),
            &["in", "inch", "inches", "[in_us]"],
        ),
        unit(
            "[ft_i]",
            Conversion::factor(dec(3048, 2)),
            &["ft", "foot", "feet"],
        ),
    ]
}

fn glucose_units() -> Vec<UnitDef> {
    vec![
        unit("mg/dL", ID, &["mg/dl", "MG/DL", "mg/100mL"]),
        // Glucose C6H12O6: 180.156 g/mol, so 1 mmol/L = 18.0156 mg/dL.
        unit(
            "mmol/L",
            Conversion::factor(dec(180_156, 4)),
            &["mmol/l", "MMOL/L", "mM"],
        ),
    ]
}

/// The built-in kinds, in the order of ARCHITECTURE.md.
pub(crate) fn kinds() -> Vec<KindDef> {
    let vs = "vital-signs";
    let systolic = ComponentId::from_static("systolic");
    let diastolic = ComponentId::from_static("diastolic");
    vec![
        KindDef {
            id: KindId::from_static("blood-pressure"),
            display: Cow::Borrowed("Blood pressure panel with all children optional"),
            category: Cow::Borrowed(vs),
            codings: vec![
                c(
                    LOINC,
                    "85354-9",
                    "Blood pressure panel with all children optional",
                ),
                c(LOINC, "55284-4", "Blood pressure systolic and diastolic"),
                c(LOINC, "35094-2", "Blood pressure panel"),
                c(SNOMED, "75367002", "Blood pressure"),
                c(MDC, "150020", "MDC_PRESS_BLD_NONINV"),
            ],
            value: None,
            components: vec![
                ComponentDef {
                    id: systolic.clone(),
                    display: Cow::Borrowed("Systolic blood pressure"),
                    codings: with_npu(
                        vec![
                            c(LOINC, "8480-6", "Systolic blood pressure"),
                            c(SNOMED, "271649006", "Systolic blood pressure"),
                            c(MDC, "150021", "MDC_PRESS_BLD_NONINV_SYS"),
                        ],
                        [
                            npu("DNK05472", "Blodtryk systolisk;Arm", "mm[Hg]"),
                            npu(
                                "NPU58033",
                                "Artery(spec.)—Blood pressure(systolic); pr.(proc.) = ? mmHg",
                                "mm[Hg]",
                            ),
                            npu(
                                "NPU57947",
                                "Artery(spec.)—Blood; pr.(systolic;proc.) = ? mmHg",
                                "mm[Hg]",
                            ),
                        ],
                    )
                    .into_iter()
                    // MedCom's code after the NPU/DNK ones, as before.
                    .chain([cu(
                        MEDCOM,
                        "MCS88019",
                        "Blodtryk hjemme systolisk;Arm",
                        "mm[Hg]",
                    )])
                    .collect(),
                    value: spec("mm[Hg]", pressure_units(), range(dec(40, 0), dec(300, 0))),
                    required: true,
                },
                ComponentDef {
                    id: diastolic.clone(),
                    display: Cow::Borrowed("Diastolic blood pressure"),
                    codings: with_npu(
                        vec![
                            c(LOINC, "8462-4", "Diastolic blood pressure"),
                            c(SNOMED, "271650006", "Diastolic blood pressure"),
                            c(MDC, "150022", "MDC_PRESS_BLD_NONINV_DIA"),
                        ],
                        [
                            npu("DNK05473", "Blodtryk diastolisk;Arm", "mm[Hg]"),
                            npu(
                                "NPU58034",
                                "Artery(spec.)—Blood pressure(diastolic); pr.(proc.) = ? mmHg",
                                "mm[Hg]",
                            ),
                            npu(
                                "NPU57948",
                                "Artery(spec.)—Blood; pr.(diastolic;proc.) = ? mmHg",
                                "mm[Hg]",
                            ),
                        ],
                    )
                    .into_iter()
                    // MedCom's code after the NPU/DNK ones, as before.
                    .chain([cu(
                        MEDCOM,
                        "MCS88020",
                        "Blodtryk hjemme diastolisk;Arm",
                        "mm[Hg]",
                    )])
                    .collect(),
                    value: spec("mm[Hg]", pressure_units(), range(dec(20, 0), dec(200, 0))),
                    required: true,
                },
            ],
            constraints: vec![Constraint::Greater {
                greater: systolic,
                lesser: diastolic,
            }],
        },
        kind(
            "mean-blood-pressure",
            "Mean blood pressure",
            vs,
            vec![
                c(LOINC, "8478-0", "Mean blood pressure"),
                c(SNOMED, "6797001", "Mean blood pressure"),
                c(MDC, "150023", "MDC_PRESS_BLD_NONINV_MEAN"),
            ],
            spec("mm[Hg]", pressure_units(), range(dec(30, 0), dec(250, 0))),
        ),
        kind(
            "heart-rate",
            "Heart rate",
            vs,
            with_npu(
                vec![
                    c(LOINC, "8867-4", "Heart rate"),
                    c(SNOMED, "364075005", "Heart rate"),
                    c(MDC, "149546", "MDC_PULS_RATE_NON_INV"),
                    c(MDC, "147842", "MDC_ECG_HEART_RATE"),
                    c(MDC, "149530", "MDC_PULS_OXIM_PULS_RATE"),
                ],
                [npu(
                    "NPU21692",
                    "Hjerte—Systole; frekv. = ? × 1/min",
                    "/min",
                )],
            ),
            spec(
                "/min",
                per_minute(&["{beats}/min", "{beat}/min", "1/min", "bpm", "beats/min"]),
                range(dec(20, 0), dec(300, 0)),
            ),
        ),
        kind(
            "body-weight",
            "Body weight",
            vs,
            with_npu(
                vec![
                    c(LOINC, "29463-7", "Body weight"),
                    c(LOINC, "3141-9", "Body weight Measured"),
                    c(SNOMED, "27113001", "Body weight"),
                    c(MDC, "188736", "MDC_MASS_BODY_ACTUAL"),
                ],
                [npu("NPU03804", "Pt—Legeme; masse = ? kg", "kg")],
            ),
            spec("kg", mass_units(), range(dec(2, 1), dec(700, 0))),
        ),
        kind(
            "body-height",
            "Body height",
            vs,
            with_npu(
                vec![
                    c(LOINC, "8302-2", "Body height"),
                    c(LOINC, "8306-3", "Body height --lying"),
                    c(SNOMED, "50373000", "Body height measure"),
                    c(MDC, "188740", "MDC_LEN_BODY_ACTUAL"),
                ],
                // NPU gives height in metres: `m` converts.
                [npu("NPU03794", "Pt—Legeme; højde = ? m", "m")],
            ),
            spec("cm", length_units(), range(dec(20, 0), dec(280, 0))),
        ),
        kind(
            "head-circumference",
            "Head Occipital-frontal circumference",
            vs,
            vec![
                c(LOINC, "9843-4", "Head Occipital-frontal circumference"),
                c(SNOMED, "363812007", "Head circumference"),
            ],
            spec("cm", length_units(), range(dec(15, 0), dec(80, 0))),
        ),
        kind(
            "bmi",
            "Body mass index (BMI) [Ratio]",
            vs,
            with_npu(
                vec![
                    c(LOINC, "39156-5", "Body mass index (BMI) [Ratio]"),
                    c(SNOMED, "60621009", "Body mass index"),
                    c(MDC, "188752", "MDC_RATIO_MASS_BODY_LEN_SQ"),
                ],
                [npu(
                    "NPU27281",
                    "Pt—Legeme; massekoefficient(masse/kvadreret højde) = ? kg/m²",
                    "kg/m2",
                )],
            ),
            spec(
                "kg/m2",
                vec![unit("kg/m2", ID, &["kg/m^2", "kg/m²", "kg.m-2"])],
                range(dec(5, 0), dec(200, 0)),
            ),
        ),
        kind(
            "body-temperature",
            "Body temperature",
            vs,
            with_npu(
                vec![
                    c(LOINC, "8310-5", "Body temperature"),
                    c(SNOMED, "386725007", "Body temperature"),
                    c(SNOMED, "276885007", "Core body temperature"),
                    c(MDC, "150364", "MDC_TEMP_BODY"),
                ],
                [
                    npu("NPU08676", "Pt—Legeme; temp. = ? °C", "Cel"),
                    npu("NPU04034", "Pt(spec.)—Blood; temp. = ? °C", "Cel"),
                ],
            ),
            spec(
                "Cel",
                vec![
                    unit("Cel", ID, &["°C", "C", "degC", "cel", "Celsius"]),
                    unit(
                        "[degF]",
                        Conversion {
                            offset: dec(-32, 0),
                            numerator: dec(5, 0),
                            denominator: dec(9, 0),
                        },
                        &["°F", "F", "degF", "Fahrenheit"],
                    ),
                    unit(
                        "K",
                        Conversion {
                            offset: dec(-27315, 2),
                            numerator: Decimal::ONE,
                            denominator: Decimal::ONE,
                        },
                        &["kelvin"],
                    ),
                ],
                range(dec(25, 0), dec(45, 0)),
            ),
        ),
        kind(
            "respiratory-rate",
            "Respiratory rate",
            vs,
            vec![
                c(LOINC, "9279-1", "Respiratory rate"),
                c(SNOMED, "86290005", "Respiratory rate"),
                c(MDC, "151562", "MDC_RESP_RATE"),
                c(MEDCOM, "MCS88122", "Respirationsfrekvens;Pt"),
            ],
            spec(
                "/min",
                per_minute(&["{breaths}/min", "{breath}/min", "1/min", "breaths/min"]),
                range(dec(1, 0), dec(100, 0)),
            ),
        ),
        kind(
            "oxygen-saturation",
            "Oxygen saturation in Arterial blood",
            vs,
            with_npu(
                vec![
                    c(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
                    c(
                        LOINC,
                        "59408-5",
                        "Oxygen saturation in Arterial blood by Pulse oximetry",
                    ),
                    c(SNOMED, "431314004", "Peripheral oxygen saturation"),
                    c(MDC, "150456", "MDC_PULS_OXIM_SAT_O2"),
                    c(MDC, "150324", "MDC_SAT_O2_ART"),
                ],
                // NPU gives saturation as a fraction (0.97, unit `1`): it converts.
                [
                    npu(
                        "NPU03011",
                        "Hb(Fe; O2-bind.; aB)—Oxygen(O2); mætn. = ?",
                        "1",
                    ),
                    npu(
                        "NPU27280",
                        "Hb(Fe; O₂-bind.; aB)—Oxygen(O₂); sat.(Pulse oximetry) = ?",
                        "1",
                    ),
                ],
            ),
            spec(
                "%",
                vec![
                    unit("%", ID, &["percent", "pct"]),
                    // NPU reports saturation as a fraction (0.97); dk-core spells it `{fraction}`.
                    unit("1", Conversion::factor(dec(100, 0)), &["{fraction}"]),
                ],
                range(dec(40, 0), dec(100, 0)),
            ),
        ),
        kind(
            "blood-glucose",
            "Glucose [Mass/volume] in Blood",
            "laboratory",
            with_npu(
                vec![
                    c(LOINC, "2339-0", "Glucose [Mass/volume] in Blood"),
                    c(LOINC, "15074-8", "Glucose [Moles/volume] in Blood"),
                    c(SNOMED, "434912009", "Blood glucose concentration"),
                    c(MDC, "160020", "MDC_CONC_GLU_GEN"),
                    cu(NLK, "NPU02187", "B—Glucose; subst.c. = ? mmol/L", "mmol/L"),
                ],
                [npu("NPU02187", "B—Glucose; stofk. = ? mmol/L", "mmol/L")],
            ),
            spec("mg/dL", glucose_units(), range(dec(10, 0), dec(1500, 0))),
        ),
        kind(
            "capillary-glucose",
            "Glucose [Mass/volume] in Capillary blood by Glucometer",
            "laboratory",
            with_npu(
                vec![
                    c(
                        LOINC,
                        "41653-7",
                        "Glucose [Mass/volume] in Capillary blood by Glucometer",
                    ),
                    c(
                        LOINC,
                        "14743-9",
                        "Glucose [Moles/volume] in Capillary blood by Glucometer",
                    ),
                    c(MDC, "160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
                ],
                [npu(
                    "NPU22089",
                    "P(kB)—Glucose; stofk. = ? mmol/L",
                    "mmol/L",
                )],
            ),
            spec("mg/dL", glucose_units(), range(dec(10, 0), dec(1500, 0))),
        ),
        kind(
            "steps",
            "Number of steps in unspecified time Pedometer",
            "activity",
            vec![
                c(
                    LOINC,
                    "55423-8",
                    "Number of steps in unspecified time Pedometer",
                ),
                c(LOINC, "41950-7", "Number of steps in 24 hour Measured"),
            ],
            spec(
                "{steps}",
                vec![unit(
                    "{steps}",
                    ID,
                    &[
                        "steps",
                        "{count}",
                        "1",
                        "/d",
                        "{steps}/d",
                        "/(24.h)",
                        "count",
                    ],
                )],
                range(dec(0, 0), dec(200_000, 0)),
            ),
        ),
    ]
}

//! Every national code in the built-in catalog, checked against the definition it was taken
//! from: the FUT infrastructure's code systems (Denmark), HL7 Norway's VkpObservation table,
//! and HL7 Denmark's dk-core value sets (quoted below: they are not among the shared files).
//! The definitions are read through `HEALTHANALYZER_FIXTURES`; without it the test says so
//! and passes (`.ci/run` sets it).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use healthanalyzer_model::{Catalog, Coding, systems};

fn fixtures(test: &str) -> Option<PathBuf> {
    match std::env::var_os("HEALTHANALYZER_FIXTURES") {
        Some(d) => Some(PathBuf::from(d).join("national-igs")),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: HEALTHANALYZER_FIXTURES is not set (.ci/run sets it to ../shared/fixtures)"
            );
            None
        }
    }
}

/// code -> display of a FHIR CodeSystem file.
fn code_system(path: PathBuf) -> (String, HashMap<String, String>) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let concepts = v["concept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["code"].as_str().unwrap().to_string(),
                c["display"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (v["url"].as_str().unwrap().to_string(), concepts)
}

/// HL7 Denmark dk-core, ValueSet `dk-core-NPUBasicObservation` (input/fsh, `$NPU` being
/// `urn:oid:1.2.208.176.2.1`, and `http://npu-terminology.org` from dk-core 3.0): the NPU codes
/// for basic observations that the FUT code system file does not hold.
const DK_CORE_NPU: &[(&str, &str)] = &[
    ("NPU03011", "Hb(Fe; O₂-bind.;aB)—Oxygen(O₂); sat. = ?"),
    (
        "NPU27280",
        "Hb(Fe; O₂-bind.;aB)—Oxygen(O₂); sat.(Pulse oximetry) = ?",
    ),
    ("NPU04034", "Pt(spec.)—Blood; temp. = ? °C"),
    ("NPU08676", "Pt—Body; temp. = ? °C"),
    (
        "NPU58033",
        "Artery(spec.)—Blood pressure(systolic); pr.(proc.) = ? mmHg",
    ),
    (
        "NPU57947",
        "Artery(spec.)—Blood; pr.(systolic;proc.) = ? mmHg",
    ),
    (
        "NPU58034",
        "Artery(spec.)—Blood pressure(diastolic); pr.(proc.) = ? mmHg",
    ),
    (
        "NPU57948",
        "Artery(spec.)—Blood; pr.(diastolic;proc.) = ? mmHg",
    ),
    ("NPU21692", "Heart—Systole; freq. = ? * 1/min"),
    ("NPU03794", "Pt—Body; height = ? m"),
    ("NPU03804", "Pt—Body; mass = ? kg"),
    (
        "NPU27281",
        "Pt—Body; mass coefficient(mass/squared height) = ? kg/m²",
    ),
];

/// HL7 Denmark dk-core, ValueSet `dk-core-IEEEBasicObservation` (the codes the catalog uses),
/// and the two glucose codes of the HL7 Personal Health Device IG.
const MDC_SOURCES: &[&str] = &[
    "151562", "149546", "149530", "147842", "150324", "150456", "150364", "188740", "188736",
    "188752", "150020", "150021", "150022", "150023", // dk-core IEEEBasicObservation
    "160020", "160184", // PHD IG: MDC_CONC_GLU_GEN, MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD
];

fn all_codings(cat: &Catalog) -> Vec<(String, &Coding)> {
    let mut out = Vec::new();
    for k in cat.kinds() {
        for c in &k.codings {
            out.push((k.id.to_string(), c));
        }
        for comp in &k.components {
            for c in &comp.codings {
                out.push((format!("{}.{}", k.id, comp.id), c));
            }
        }
    }
    out
}

#[test]
fn every_npu_medcom_nlk_and_mdc_code_is_in_its_source() {
    let Some(igs) = fixtures("every_npu_medcom_nlk_and_mdc_code_is_in_its_source") else {
        return;
    };
    let fut = igs.join("dk-fut/input/resources");
    let (npu_url, fut_npu) = code_system(fut.join("CodeSystem-urn-oid-1.2.208.176.2.1.json"));
    let (medcom_url, fut_medcom) =
        code_system(fut.join("CodeSystem-urn-oid-1.2.208.184.100.8.json"));
    assert_eq!(npu_url, systems::NPU);
    assert_eq!(medcom_url, systems::MEDCOM);
    let vkp = std::fs::read_to_string(igs.join("no-vkp/input/pages/index.md")).unwrap();

    let cat = Catalog::builtin();
    let mut checked = HashMap::<&str, usize>::new();
    for (kind, c) in all_codings(cat) {
        let code = c.code.as_ref();
        let display = c.display.as_deref().unwrap_or_default();
        let system = c.system.as_ref();
        if system == systems::NPU || system == systems::NPU_URI {
            match fut_npu.get(code) {
                // In the FUT code system: the display is the one it gives.
                Some(d) => assert_eq!(d, display, "{kind}: {system}|{code}"),
                // Else in dk-core's value set, or in VKP's NPU/NLK column (NPU codes are one
                // international terminology).
                None => assert!(
                    DK_CORE_NPU.iter().any(|(c, _)| *c == code)
                        || vkp.contains(&format!("|{code} ")),
                    "{kind}: {system}|{code} is in neither the FUT code system, dk-core nor VKP"
                ),
            }
            *checked.entry("NPU").or_default() += 1;
        } else if system == systems::MEDCOM {
            assert_eq!(
                fut_medcom.get(code).map(String::as_str),
                Some(display),
                "{kind}: {system}|{code}"
            );
            *checked.entry("MedCom").or_default() += 1;
        } else if system == systems::NLK {
            // The VKP table: `|blodsukker||VkpObservation|15074-8 …|434912009 …|NPU02187 …|`.
            let row = vkp
                .lines()
                .find(|l| l.contains(&format!("|{code} ")))
                .unwrap_or_else(|| panic!("{kind}: {system}|{code} is not in VKP's table"));
            assert!(row.contains(display), "{kind}: {row}");
            *checked.entry("NLK").or_default() += 1;
        } else if system == systems::MDC {
            assert!(MDC_SOURCES.contains(&code), "{kind}: {system}|{code}");
            *checked.entry("MDC").or_default() += 1;
        }
    }
    for system in ["NPU", "MedCom", "NLK", "MDC"] {
        assert!(
            checked.get(system).copied().unwrap_or(0) > 0,
            "no {system} code checked"
        );
    }
    // And the other way: every code the national definitions give for a kind the catalog
    // knows finds it.
    for (code, want) in [
        ("DNK05472", "blood-pressure"),
        ("DNK05473", "blood-pressure"),
        ("NPU03011", "oxygen-saturation"),
        ("NPU22089", "capillary-glucose"),
        ("NPU27281", "bmi"),
        ("NPU03804", "body-weight"),
        ("NPU21692", "heart-rate"),
        ("NPU03794", "body-height"),
        ("NPU08676", "body-temperature"),
    ] {
        assert!(
            fut_npu.contains_key(code),
            "{code} left the FUT code system"
        );
        for system in [systems::NPU, systems::NPU_URI] {
            let found = cat.lookup(system, code).map(|m| m.kind().id.to_string());
            assert_eq!(found.as_deref(), Some(want), "{system}|{code}");
        }
    }
    for (code, want) in [
        ("MCS88019", "blood-pressure"),
        ("MCS88020", "blood-pressure"),
        ("MCS88122", "respiratory-rate"),
    ] {
        assert!(
            fut_medcom.contains_key(code),
            "{code} left the MedCom code system"
        );
        let found = cat
            .lookup(systems::MEDCOM, code)
            .map(|m| m.kind().id.to_string());
        assert_eq!(found.as_deref(), Some(want), "{code}");
    }
}

#[test]
fn every_code_of_the_vkp_table_finds_its_kind() {
    let Some(igs) = fixtures("every_code_of_the_vkp_table_finds_its_kind") else {
        return;
    };
    let vkp = std::fs::read_to_string(igs.join("no-vkp/input/pages/index.md")).unwrap();
    let cat = Catalog::builtin();
    let mut rows = 0;
    for line in vkp
        .lines()
        .filter(|l| l.contains("|Vkp") || l.contains("|(component)|"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // |type|subtype|profile|LOINC|SNOMED|NPU/NLK|
        let first = |cell: &str| cell.split_whitespace().next().unwrap_or("").to_string();
        let (loinc, snomed) = (first(cells[4]), first(cells[5]));
        // Scores and questionnaires (`-` or `code: …` for LOINC) are no measurement kinds.
        if loinc == "-" || loinc == "code:" {
            continue;
        }
        // The table's body-weight LOINC is a typo for 29463-7 (29563-7 is not a body weight
        // code); the SNOMED code of the same row is checked.
        if loinc != "29563-7" {
            assert!(
                cat.lookup(systems::LOINC, &loinc).is_some(),
                "LOINC {loinc}: {line}"
            );
        }
        assert!(
            cat.lookup(systems::SNOMED, &snomed).is_some(),
            "SNOMED {snomed}: {line}"
        );
        if let Some(nlk) = cells.get(6).map(|c| first(c)).filter(|c| !c.is_empty()) {
            assert!(
                cat.lookup(systems::NLK, &nlk).is_some(),
                "NLK {nlk}: {line}"
            );
        }
        rows += 1;
    }
    assert!(rows >= 8, "{rows} rows read from the VKP table");
}

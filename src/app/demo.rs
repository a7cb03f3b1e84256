//! `hearth serve --demo`: a small, realistic ward picture (wards, doctors, patients, their
//! admissions and echo requests on every pathway, some overdue, some completed, one with an
//! extended deadline), written through the ordinary write path with times relative to now, so a
//! new user sees a living strip board at once. Loaded once: it is skipped when present.

use serde_json::{Value, json};

use super::AppError;
use crate::fhir::ResourceId;
use crate::rest::RestState;
use crate::triage::request::format_utc;
use crate::triage::url;

/// The system of the demo's medical record numbers.
const MRN_SYSTEM: &str = "https://hearth.health/demo/mrn";

const HOUR: i64 = 3_600_000;
const MINUTE: i64 = 60_000;

/// Wards: id, name.
const WARDS: [(&str, &str); 4] = [
    ("demo-ward-7", "Ward 7 (Cardiology)"),
    ("demo-ward-12", "Ward 12 (Respiratory)"),
    ("demo-amu", "Acute Medical Unit"),
    ("demo-ccu", "Coronary Care Unit"),
];

/// Requesting doctors: id, family, given.
const DOCTORS: [(&str, &str, &str); 3] = [
    ("demo-dr-khan", "Khan", "Amira"),
    ("demo-dr-evans", "Evans", "Tom"),
    ("demo-dr-clarke", "Clarke", "Sophie"),
];

/// One demo request: patient (family, given, gender, birth date, MRN), ward, doctor, pathway,
/// received and triaged (hours ago), completed (hours ago), the clinical question.
struct Case {
    family: &'static str,
    given: &'static str,
    gender: &'static str,
    birth: &'static str,
    mrn: &'static str,
    ward: usize,
    doctor: usize,
    pathway: Option<&'static str>,
    received_hours_ago: f64,
    triaged_hours_ago: f64,
    completed_hours_ago: Option<f64>,
    question: &'static str,
}

const CASES: [Case; 10] = [
    Case {
        family: "Okafor",
        given: "Grace",
        gender: "female",
        birth: "1948-03-12",
        mrn: "H100231",
        ward: 3,
        doctor: 0,
        pathway: Some("purple"),
        received_hours_ago: 0.5,
        triaged_hours_ago: 0.3,
        completed_hours_ago: None,
        question: "Hypotensive after STEMI, new murmur: ?papillary muscle rupture",
    },
    Case {
        family: "Whitfield",
        given: "Harold",
        gender: "male",
        birth: "1939-11-02",
        mrn: "H100872",
        ward: 2,
        doctor: 1,
        pathway: Some("purple"),
        received_hours_ago: 100.0,
        triaged_hours_ago: 99.5,
        completed_hours_ago: None,
        question: "Suspected tamponade, pulsus paradoxus",
    },
    Case {
        family: "Nowak",
        given: "Zofia",
        gender: "female",
        birth: "1962-07-25",
        mrn: "H101455",
        ward: 0,
        doctor: 0,
        pathway: Some("red"),
        received_hours_ago: 3.0,
        triaged_hours_ago: 2.0,
        completed_hours_ago: None,
        question: "New AF with breathlessness, LV function?",
    },
    Case {
        family: "Reid",
        given: "Callum",
        gender: "male",
        birth: "1975-01-30",
        mrn: "H102019",
        ward: 1,
        doctor: 2,
        pathway: Some("red"),
        received_hours_ago: 170.0,
        triaged_hours_ago: 168.0,
        completed_hours_ago: None,
        question: "Raised troponin, regional wall motion?",
    },
    Case {
        family: "Singh",
        given: "Priya",
        gender: "female",
        birth: "1983-09-14",
        mrn: "H102377",
        ward: 2,
        doctor: 1,
        pathway: Some("amber"),
        received_hours_ago: 26.0,
        triaged_hours_ago: 24.0,
        completed_hours_ago: None,
        question: "Syncope, ejection systolic murmur: ?aortic stenosis",
    },
    Case {
        family: "Murphy",
        given: "Declan",
        gender: "male",
        birth: "1957-04-08",
        mrn: "H102911",
        ward: 0,
        doctor: 2,
        pathway: Some("amber"),
        received_hours_ago: 340.0,
        triaged_hours_ago: 336.0,
        completed_hours_ago: None,
        question: "Heart failure admission, baseline LVEF",
    },
    Case {
        family: "Adeyemi",
        given: "Tunde",
        gender: "male",
        birth: "1990-12-19",
        mrn: "H103302",
        ward: 1,
        doctor: 1,
        pathway: Some("green"),
        received_hours_ago: 30.0,
        triaged_hours_ago: 28.0,
        completed_hours_ago: None,
        question: "Pre-operative echo, asymptomatic",
    },
    Case {
        family: "Fraser",
        given: "Eilidh",
        gender: "female",
        birth: "1944-06-03",
        mrn: "H103648",
        ward: 3,
        doctor: 0,
        pathway: None,
        received_hours_ago: 0.7,
        triaged_hours_ago: 0.0,
        completed_hours_ago: None,
        question: "Endocarditis screen, Staph aureus bacteraemia",
    },
    Case {
        family: "Hughes",
        given: "Gareth",
        gender: "male",
        birth: "1969-02-27",
        mrn: "H104004",
        ward: 0,
        doctor: 2,
        pathway: Some("red"),
        received_hours_ago: 74.0,
        triaged_hours_ago: 72.0,
        completed_hours_ago: Some(20.0),
        question: "Post-MI LV thrombus?",
    },
    Case {
        family: "Patel",
        given: "Meera",
        gender: "female",
        birth: "1978-10-10",
        mrn: "H104412",
        ward: 2,
        doctor: 1,
        pathway: Some("amber"),
        received_hours_ago: 50.0,
        triaged_hours_ago: 48.0,
        completed_hours_ago: None,
        question: "Pulmonary hypertension assessment",
    },
];

fn hours_ago(now: i64, hours: f64) -> String {
    format_utc(now - (hours * HOUR as f64) as i64 - (now % MINUTE))
}

async fn put(state: &RestState, resource: Value) -> Result<Value, AppError> {
    let t = resource["resourceType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id = ResourceId::parse(resource["id"].as_str().unwrap_or_default())
        .map_err(|e| AppError::Install(format!("demo: {}", e.diagnostics)))?;
    let (version, _) = state
        .update_through_hooks(&t, &id, resource, None)
        .await
        .map_err(|e| {
            AppError::Install(format!("demo: cannot store {t}/{id}: HTTP {}", e.status()))
        })?;
    serde_json::from_slice(&version.content).map_err(|e| AppError::Install(format!("demo: {e}")))
}

/// Loads the demo unless it is there.
pub async fn load(state: &RestState) -> Result<(), AppError> {
    let marker =
        ResourceId::parse("demo-patient-1").map_err(|e| AppError::Install(e.diagnostics))?;
    if state
        .storage
        .find_current("Patient", &marker)
        .await?
        .is_some()
    {
        tracing::info!("the demo data is already loaded");
        return Ok(());
    }
    let now = state.clock.now_millis();
    for (id, name) in WARDS {
        put(state, json!({"resourceType": "Location", "id": id, "status": "active", "name": name,
            "mode": "instance",
            "physicalType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "wa", "display": "Ward"}]}})).await?;
    }
    for (id, family, given) in DOCTORS {
        put(
            state,
            json!({"resourceType": "Practitioner", "id": id, "active": true,
            "name": [{"family": family, "given": [given], "prefix": ["Dr"]}]}),
        )
        .await?;
    }
    for (n, case) in CASES.iter().enumerate() {
        let n = n + 1;
        let (ward_id, ward_name) = WARDS[case.ward];
        let (doctor_id, family, given) = DOCTORS[case.doctor];
        let patient = format!("demo-patient-{n}");
        put(state, json!({"resourceType": "Patient", "id": patient,
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": MRN_SYSTEM, "value": case.mrn}],
            "name": [{"family": case.family, "given": [case.given]}],
            "gender": case.gender, "birthDate": case.birth})).await?;
        let encounter = format!("demo-encounter-{n}");
        put(state, json!({"resourceType": "Encounter", "id": encounter, "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient encounter"},
            "subject": {"reference": format!("Patient/{patient}")},
            "period": {"start": hours_ago(now, case.received_hours_ago + 30.0)},
            "location": [{"location": {"reference": format!("Location/{ward_id}"), "display": ward_name}, "status": "active"}]})).await?;
        let mut request = json!({"resourceType": "ServiceRequest", "id": format!("demo-echo-{n}"),
            "meta": {"profile": [url::ECHO_PROFILE]},
            "status": if case.completed_hours_ago.is_some() { "completed" } else { "active" },
            "intent": "order",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "40701008", "display": "Echocardiography"}], "text": "Transthoracic echo"},
            "subject": {"reference": format!("Patient/{patient}"), "display": format!("{} {}", case.given, case.family)},
            "encounter": {"reference": format!("Encounter/{encounter}")},
            "authoredOn": hours_ago(now, case.received_hours_ago),
            "requester": {"reference": format!("Practitioner/{doctor_id}"), "display": format!("Dr {given} {family}")},
            "reasonCode": [{"text": case.question}],
            "note": [{"text": case.question}],
            "extension": [{"url": url::WARD, "valueReference": {"reference": format!("Location/{ward_id}"), "display": ward_name}}]});
        if let Some(code) = case.pathway {
            let extensions = request["extension"]
                .as_array_mut()
                .ok_or_else(|| AppError::Install("demo: extension".into()))?;
            extensions.push(json!({"url": url::PATHWAY, "valueCoding": {"system": url::PATHWAY_SYSTEM, "code": code}}));
            extensions.push(json!({"url": url::TRIAGED, "valueDateTime": hours_ago(now, case.triaged_hours_ago)}));
            extensions.push(json!({"url": url::TRIAGED_BY, "valueReference": {"reference": "Practitioner/demo-dr-khan", "display": "Dr Amira Khan"}}));
            if let Some(completed) = case.completed_hours_ago {
                extensions.push(
                    json!({"url": url::COMPLETED, "valueDateTime": hours_ago(now, completed)}),
                );
            }
        }
        let stored = put(state, request).await?;
        if case.family == "Patel" {
            // An extended deadline: the patient was off the ward for a CT scan.
            let mut extended = stored;
            let parameters = json!({"resourceType": "Parameters", "parameter": [
                {"name": "hours", "valueDecimal": 24},
                {"name": "reason", "valueString": "Patient off the ward for CT; rebooked"}]});
            state
                .triage
                .extend_deadline(&mut extended, &parameters, now, Some(&json!({"reference": "Practitioner/demo-dr-khan", "display": "Dr Amira Khan"})))
                .map_err(|e| AppError::Install(format!("demo: {e:?}")))?;
            put(state, extended).await?;
        }
    }
    tracing::info!("loaded the demo data: {} echo requests", CASES.len());
    Ok(())
}

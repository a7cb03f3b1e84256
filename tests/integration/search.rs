//! Search beyond the data-driven cases: paging while data changes, conditional interactions
//! (also under concurrency), SearchParameters created through the API with `$reindex`,
//! formats and subsets, and realistic Synthea patients.

use reqwest::Method;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::{TestServer, json_with_status, link, outcome};

on_both_backends!(
    paging_stays_correct_while_data_changes,
    conditional_create_update_and_delete,
    concurrent_conditional_creates_make_one_resource,
    search_parameters_through_the_api_and_reindex,
    formats_and_subsets,
    synthea_patients,
    walking_in_id_order_gives_the_same_answers,
    pages_chosen_from_the_index_in_id_order,
);

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn get_json(s: &TestServer, url: &str) -> Value {
    json_with_status(s.client.get(url).send().await.unwrap(), 200).await
}

async fn search(s: &TestServer, path: &str) -> Value {
    json_with_status(s.get(path).await, 200).await
}

/// Every page of a search from `url` on, following its `next` links.
async fn all_pages(s: &TestServer, url: String) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(url);
    while let Some(url) = next {
        let page = get_json(s, &url).await;
        next = link(&page, "next");
        pages.push(page);
    }
    pages
}

async fn paging_stays_correct_while_data_changes(s: &TestServer) {
    let mut made = Vec::new();
    for i in 0..25 {
        let p = s
            .put(
                &format!("Patient/pg{i:02}"),
                &json!({"resourceType": "Patient", "id": format!("pg{i:02}"), "name": [{"family": "Pager"}],
                    "birthDate": format!("19{:02}-01-01", 50 + i)}),
            )
            .await;
        assert_eq!(p.status(), 201);
        made.push(format!("pg{i:02}"));
    }
    let first = search(s, "Patient?family=pager&_sort=birthdate&_count=10").await;
    assert_eq!(ids(&first), made[..10]);
    assert!(link(&first, "previous").is_none());
    assert!(link(&first, "first").is_some());
    assert_eq!(
        first.get("total"),
        None,
        "no total unless asked when more pages follow"
    );
    // While the client reads page one: a new patient sorts before everything, one on page two
    // is deleted, one on page three changes its sort key to the front.
    s.put("Patient/pgnew", &json!({"resourceType": "Patient", "id": "pgnew", "name": [{"family": "Pager"}], "birthDate": "1900"})).await;
    s.request(Method::DELETE, "Patient/pg12")
        .send()
        .await
        .unwrap();
    s.put("Patient/pg22", &json!({"resourceType": "Patient", "id": "pg22", "name": [{"family": "Pager"}], "birthDate": "1901"})).await;
    let second = get_json(s, &link(&first, "next").expect("next")).await;
    let expected: Vec<String> = made[10..21]
        .iter()
        .filter(|id| *id != "pg12")
        .cloned()
        .collect();
    assert_eq!(
        ids(&second),
        expected,
        "page two continues after page one's last entry"
    );
    let third = get_json(s, &link(&second, "next").expect("next")).await;
    assert_eq!(ids(&third), ["pg21", "pg23", "pg24"]);
    assert!(link(&third, "next").is_none());
    // Back from page two: the ten that now come before its first entry.
    let back = get_json(s, &link(&second, "previous").expect("previous")).await;
    let mut before: Vec<String> = vec!["pgnew".into(), "pg22".into()];
    before.extend(made[..10].iter().cloned());
    assert_eq!(ids(&back), before[2..12], "the page before page two");
    let back_again = get_json(s, &link(&back, "previous").expect("previous")).await;
    assert_eq!(ids(&back_again), ["pgnew", "pg22"]);
    assert!(link(&back_again, "previous").is_none());
    // Sorting descending, and the same search by POST, page alike.
    let desc = search(s, "Patient?family=pager&_sort=-birthdate&_count=4").await;
    assert_eq!(ids(&desc), ["pg24", "pg23", "pg21", "pg20"]);
    let next = get_json(s, &link(&desc, "next").unwrap()).await;
    assert_eq!(ids(&next), ["pg19", "pg18", "pg17", "pg16"]);
    // A cursor from another sort is refused.
    let cursor = link(&desc, "next").unwrap();
    let cursor = cursor.split("_cursor=").nth(1).unwrap();
    outcome(
        s.get(&format!(
            "Patient?family=pager&_sort=-birthdate,_lastUpdated&_cursor={cursor}"
        ))
        .await,
        400,
        "value",
    )
    .await;
}

async fn conditional_create_update_and_delete(s: &TestServer) {
    let patient = json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "c-1"}], "name": [{"family": "Cond"}]});
    let create = |body: Value, criteria: &'static str| {
        s.request(Method::POST, "Patient")
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", criteria)
            .body(body.to_string())
            .send()
    };
    let first = create(patient.clone(), "identifier=urn:mrn|c-1")
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let id = first.headers()["location"]
        .to_str()
        .unwrap()
        .split('/')
        .nth_back(2)
        .unwrap()
        .to_owned();
    let again = create(patient.clone(), "identifier=urn:mrn|c-1")
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "one match: nothing is created");
    assert!(again.headers()["location"].to_str().unwrap().contains(&id));
    assert_eq!(
        search(s, "Patient?identifier=urn:mrn|c-1&_total=accurate").await["total"],
        1
    );
    s.create(&json!({"resourceType": "Patient", "name": [{"family": "Cond"}]}))
        .await;
    outcome(
        create(patient.clone(), "family=cond").await.unwrap(),
        412,
        "multiple-matches",
    )
    .await;
    outcome(
        create(patient.clone(), "nonsense=1").await.unwrap(),
        400,
        "invalid",
    )
    .await;

    // Conditional update: one match updates it, none creates, several is 412.
    let updated = s
        .put("Patient?identifier=urn:mrn|c-1", &json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "c-1"}], "name": [{"family": "Cond"}], "active": true}))
        .await;
    assert_eq!(updated.status(), 200);
    let body = json_with_status(updated, 200).await;
    assert_eq!(
        (
            body["id"].as_str().unwrap(),
            body["meta"]["versionId"].as_str().unwrap()
        ),
        (id.as_str(), "2")
    );
    let made = s.put("Patient?identifier=urn:mrn|c-2", &json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "c-2"}]})).await;
    assert_eq!(made.status(), 201);
    outcome(
        s.put("Patient?family=cond", &json!({"resourceType": "Patient"}))
            .await,
        412,
        "multiple-matches",
    )
    .await;
    outcome(
        s.put(
            "Patient?identifier=urn:mrn|c-1",
            &json!({"resourceType": "Patient", "id": "other"}),
        )
        .await,
        400,
        "invalid",
    )
    .await;

    // Conditional delete removes every match.
    let gone = s
        .request(Method::DELETE, "Patient?family=cond")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    assert!(
        search(s, "Patient?family=cond")
            .await
            .get("entry")
            .is_none()
    );
    let none = s
        .request(Method::DELETE, "Patient?family=cond")
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 200, "no match is not an error");
    outcome(
        s.request(Method::DELETE, "Patient").send().await.unwrap(),
        400,
        "invalid",
    )
    .await;
}

async fn concurrent_conditional_creates_make_one_resource(s: &TestServer) {
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let client = s.client.clone();
        let url = format!("{}/Patient", s.base);
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/fhir+json")
                .header("if-none-exist", "identifier=urn:mrn|race")
                .body(json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "race"}]}).to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        11,
        "{statuses:?}"
    );
    assert_eq!(
        search(s, "Patient?identifier=urn:mrn|race&_summary=count").await["total"],
        1
    );
}

async fn search_parameters_through_the_api_and_reindex(s: &TestServer) {
    let eye = |id: &str, colour: &str| json!({"resourceType": "Patient", "id": id, "extension": [{"url": "http://example.org/eye", "valueCode": colour}]});
    s.put("Patient/before", &eye("before", "blue")).await;
    let parameter = json!({"resourceType": "SearchParameter", "url": "http://example.org/SearchParameter/eye-colour",
        "name": "eye-colour", "status": "active", "description": "Eye colour", "code": "eye-colour", "base": ["Patient"], "type": "token",
        "expression": "Patient.extension('http://example.org/eye').value"});
    let created = s.post("SearchParameter", &parameter).await;
    assert_eq!(created.status(), 201);
    let sp_id = json_with_status(created, 201).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.put("Patient/after", &eye("after", "blue")).await;
    let found = search(s, "Patient?eye-colour=blue").await;
    assert_eq!(
        ids(&found),
        ["after"],
        "new writes are indexed at once; older ones wait for $reindex"
    );
    let statement = search(s, "metadata").await;
    let patient = statement["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()
        .clone();
    assert!(
        patient["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "eye-colour")
    );
    let reindexed = json_with_status(
        s.request(Method::POST, "Patient/$reindex")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(
        reindexed["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("reindexed")
    );
    let mut found = ids(&search(s, "Patient?eye-colour=blue").await);
    found.sort();
    assert_eq!(found, ["after", "before"]);
    let one = s
        .request(Method::POST, "Patient/before/$reindex")
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    outcome(
        s.request(Method::POST, "Patient/nobody/$reindex")
            .send()
            .await
            .unwrap(),
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        s.request(Method::POST, "$reindex")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // An unusable definition is refused.
    let bad = json!({"resourceType": "SearchParameter", "url": "http://example.org/SearchParameter/bad", "name": "bad",
        "status": "active", "description": "x", "code": "bad", "base": ["Patient"], "type": "token", "expression": "Patient.name.where("});
    outcome(s.post("SearchParameter", &bad).await, 400, "invalid").await;
    // Deleted, the parameter is unknown again.
    s.request(Method::DELETE, &format!("SearchParameter/{sp_id}"))
        .send()
        .await
        .unwrap();
    outcome(
        s.request(Method::GET, "Patient?eye-colour=blue")
            .header("prefer", "handling=strict")
            .send()
            .await
            .unwrap(),
        400,
        "invalid",
    )
    .await;
}

async fn formats_and_subsets(s: &TestServer) {
    s.put("Patient/f1", &json!({"resourceType": "Patient", "id": "f1", "name": [{"family": "Format"}], "gender": "other",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Format</div>"}})).await;
    let xml = s.get("Patient?family=format&_format=xml").await;
    assert_eq!(xml.status(), 200);
    assert!(
        xml.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+xml")
    );
    let text = xml.text().await.unwrap();
    assert!(
        text.contains("<Bundle xmlns=\"http://hl7.org/fhir\">")
            && !text.contains("<searchset")
            && text.contains("value=\"searchset\""),
        "{text}"
    );
    let summary = search(s, "Patient?family=format&_summary=true").await;
    let resource = &summary["entry"][0]["resource"];
    assert!(resource.get("text").is_none());
    assert_eq!(resource["meta"]["tag"][0]["code"], "SUBSETTED");
    let elements = search(s, "Patient?family=format&_elements=gender").await;
    let resource = &elements["entry"][0]["resource"];
    assert_eq!(resource["gender"], "other");
    assert!(resource.get("name").is_none());
    let pretty = s
        .get("Patient?family=format&_pretty=true")
        .await
        .text()
        .await
        .unwrap();
    assert!(pretty.contains("\n  \"resourceType\""));
    // A form POST must be a form.
    let wrong = s
        .request(Method::POST, "Patient/_search")
        .header("content-type", "application/fhir+json")
        .body("{}")
        .send()
        .await
        .unwrap();
    outcome(wrong, 415, "not-supported").await;
}

/// Loads a Synthea transaction Bundle (copied from ../shared/data/synthea, Apache-2.0) entry by entry (Bundles are another issue's work): each
/// `urn:uuid:X` fullUrl becomes `Type/X`, and the resource is written with PUT under id X.
async fn load_synthea(s: &TestServer, file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/synthea")
        .join(file);
    let mut text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bundle: Value = serde_json::from_str(&text).unwrap();
    for entry in bundle["entry"].as_array().unwrap() {
        let full = entry["fullUrl"].as_str().unwrap();
        let t = entry["resource"]["resourceType"].as_str().unwrap();
        let uuid = full.trim_start_matches("urn:uuid:");
        text = text.replace(&format!("\"{full}\""), &format!("\"{t}/{uuid}\""));
    }
    let bundle: Value = serde_json::from_str(&text).unwrap();
    for entry in bundle["entry"].as_array().unwrap() {
        let mut resource = entry["resource"].clone();
        let (t, id) = entry["fullUrl"].as_str().unwrap().split_once('/').unwrap();
        resource["id"] = Value::String(id.to_owned());
        let response = s.put(&format!("{t}/{id}"), &resource).await;
        assert_eq!(
            response.status(),
            201,
            "{t}/{id}: {}",
            response.text().await.unwrap()
        );
    }
    bundle
}

async fn synthea_patients(s: &TestServer) {
    for file in [
        "Chet_Thompson_eda17701.json",
        "Clemente_Kreiger_1484a42d.json",
    ] {
        let bundle = load_synthea(s, file).await;
        let resources: Vec<&Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["resource"])
            .collect();
        let patient = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient")
            .unwrap();
        let pid = patient["id"].as_str().unwrap_or_default().to_owned();
        let pid = if pid.is_empty() {
            bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["resource"]["resourceType"] == "Patient")
                .unwrap()["fullUrl"]
                .as_str()
                .unwrap()
                .split('/')
                .nth(1)
                .unwrap()
                .to_owned()
        } else {
            pid
        };
        let observations: Vec<&&Value> = resources
            .iter()
            .filter(|r| r["resourceType"] == "Observation")
            .collect();
        // Every Observation of the patient, counted from the Bundle itself.
        let all = search(s, &format!("Observation?patient={pid}&_summary=count")).await;
        assert_eq!(all["total"], observations.len(), "{file}");
        // Per LOINC code, newest first, as a chart would ask.
        let code = observations[0]["code"]["coding"][0]["code"]
            .as_str()
            .unwrap();
        let mut dates: Vec<&str> = observations
            .iter()
            .filter(|o| o["code"]["coding"][0]["code"] == code)
            .map(|o| o["effectiveDateTime"].as_str().unwrap())
            .collect();
        dates.sort_unstable_by(|a, b| b.cmp(a));
        let by_code = search(s, &format!("Observation?patient=Patient/{pid}&code=http://loinc.org|{code}&_sort=-date&_count=500")).await;
        let got: Vec<&str> = by_code["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["effectiveDateTime"].as_str().unwrap())
            .collect();
        assert_eq!(got, dates, "{file}: {code} newest first");
        // Encounters through the compartment, and a chained search by the patient's name.
        let encounters = resources
            .iter()
            .filter(|r| r["resourceType"] == "Encounter")
            .count();
        let compartment = search(s, &format!("Patient/{pid}/Encounter?_total=accurate")).await;
        assert_eq!(compartment["total"], encounters);
        let family = patient["name"][0]["family"].as_str().unwrap();
        let chained = search(
            s,
            &format!("Encounter?patient.family={family}&_total=accurate"),
        )
        .await;
        assert_eq!(chained["total"], encounters);
        // Conditions with their patient included.
        let conditions = resources
            .iter()
            .filter(|r| r["resourceType"] == "Condition")
            .count();
        let with_patient = search(
            s,
            &format!("Condition?subject=Patient/{pid}&_include=Condition:patient"),
        )
        .await;
        let entries = with_patient["entry"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(entries, conditions + usize::from(conditions > 0));
        // The patient found by birth date and reverse-included with its Encounters.
        let birth = patient["birthDate"].as_str().unwrap();
        let found = search(
            s,
            &format!("Patient?birthdate={birth}&_id={pid}&_revinclude=Encounter:patient"),
        )
        .await;
        assert_eq!(found["entry"].as_array().unwrap().len(), 1 + encounters);
        // Quantities: observations with a value above a threshold, counted from the Bundle.
        let above = observations
            .iter()
            .filter(|o| {
                o["subject"]["reference"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&pid))
            })
            .filter(|o| {
                o["valueQuantity"]["value"]
                    .as_f64()
                    .is_some_and(|v| v > 50.0)
            })
            .count();
        let q = search(
            s,
            &format!("Observation?patient={pid}&value-quantity=gt50&_summary=count"),
        )
        .await;
        assert_eq!(q["total"], above, "{file}");
    }
}

/// Past 2,000 candidates the engine walks resources in id order instead of reading the driving
/// index (see `storage::search::choose_plan`); both plans must give the same pages.
async fn walking_in_id_order_gives_the_same_answers(s: &TestServer) {
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (client, base) = (s.client.clone(), s.base.clone());
        tasks.push(tokio::spawn(async move {
            for i in (worker..2200).step_by(16) {
                let status = if i % 3 == 0 { "preliminary" } else { "final" };
                let body = json!({"resourceType": "Observation", "id": format!("w{i:04}"), "status": status,
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "valueQuantity": {"value": i % 200, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}});
                let response = client
                    .put(format!("{base}/Observation/w{i:04}"))
                    .header("content-type", "application/fhir+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Walked in id order (the code matches 2,200 resources), paged by 100.
    let all: Vec<String> = (0..2200).map(|i| format!("w{i:04}")).collect();
    let pages = all_pages(s, format!("{}/Observation?code=8867-4&_count=100", s.base)).await;
    let seen: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(seen, all);
    let expected: Vec<String> = (0..2200)
        .filter(|i| i % 3 != 0 && i % 200 > 150)
        .map(|i| format!("w{i:04}"))
        .collect();
    let narrowed = search(
        s,
        "Observation?code=8867-4&status=final&value-quantity=gt150&_count=1000",
    )
    .await;
    assert_eq!(ids(&narrowed), expected);
    // The code and threshold alone become their composite; its pages meet every match once,
    // in id order.
    let above: Vec<String> = (0..2200)
        .filter(|i| i % 200 > 150)
        .map(|i| format!("w{i:04}"))
        .collect();
    let pages = all_pages(
        s,
        format!(
            "{}/Observation?code=8867-4&value-quantity=gt150&_count=100",
            s.base
        ),
    )
    .await;
    assert_eq!(pages.len(), above.len().div_ceil(100));
    let seen: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(seen, above);
    // The same search sorted by value reads the index, and finds the same set.
    let sorted = search(s, "Observation?code=8867-4&status=final&value-quantity=gt150&_sort=value-quantity&_count=1000&_total=accurate").await;
    assert_eq!(sorted["total"], expected.len());
    let mut by_value = ids(&sorted);
    by_value.sort();
    assert_eq!(by_value, expected);
    // :not and :missing walk too.
    let not_final = search(
        s,
        "Observation?code=8867-4&status:not=final&_total=accurate&_count=5",
    )
    .await;
    assert_eq!(not_final["total"], (0..2200).filter(|i| i % 3 == 0).count());
    assert_eq!(
        ids(&not_final),
        ["w0000", "w0003", "w0006", "w0009", "w0012"]
    );
}

/// A search in id order whose one condition is a plain match or a chain picks its page from the
/// index rows: a resource matching twice (family and given name) is listed once, deleted
/// resources are gone, and paging forward and back meets every match once.
async fn pages_chosen_from_the_index_in_id_order(s: &TestServer) {
    let mut live = Vec::new();
    for i in 0..23 {
        let id = format!("win{i:02}");
        let patient = json!({"resourceType": "Patient", "id": id,
            "name": [{"family": "Windward", "given": ["Windy"]}, {"family": format!("Windsor{i}")}]});
        assert_eq!(
            s.put(&format!("Patient/{id}"), &patient).await.status(),
            201
        );
        let encounter = json!({"resourceType": "Encounter", "id": format!("wen{i:02}"), "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": format!("Patient/{id}")}});
        assert_eq!(
            s.put(&format!("Encounter/wen{i:02}"), &encounter)
                .await
                .status(),
            201
        );
        live.push(id);
    }
    for gone in ["win04", "win17"] {
        let deleted = s
            .request(Method::DELETE, &format!("Patient/{gone}"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 200);
        live.retain(|id| id != gone);
    }
    let pages = all_pages(s, format!("{}/Patient?name=wind&_count=6", s.base)).await;
    assert!(pages.iter().all(|page| ids(page).len() <= 6));
    let seen: Vec<String> = pages.iter().flat_map(ids).collect();
    assert_eq!(seen, live, "each live match once, in id order");
    assert_eq!(pages.len(), 4, "21 matches in pages of 6");
    let back = get_json(s, &link(&pages[2], "previous").expect("previous")).await;
    assert_eq!(
        ids(&back),
        ids(&pages[1]),
        "the page before page three is page two"
    );
    let total = search(s, "Patient?name=wind&_total=accurate&_count=1").await;
    assert_eq!(total["total"], 21);
    // Chained: the encounters of the live patients (a deleted patient's encounters refer to
    // nothing that matches).
    let encounters: Vec<String> = all_pages(
        s,
        format!(
            "{}/Encounter?subject:Patient.name=windward&_count=5",
            s.base
        ),
    )
    .await
    .iter()
    .flat_map(ids)
    .collect();
    let expected: Vec<String> = live.iter().map(|id| id.replace("win", "wen")).collect();
    assert_eq!(encounters, expected);
}

/// `code` and `value-quantity` together are answered from the composite they imply: SQLite
/// reads its lookup index as the range of the code above the threshold, not every Observation
/// of the code (`search::implied`), and finds the same Observations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_and_a_threshold_read_their_composite_above_the_threshold() {
    use hearth::search::{Registry, extract, query};
    let database = crate::support::TestDatabase::sqlite();
    let url = hearth::config::DatabaseUrl::parse(&database.url()).unwrap();
    let storage =
        hearth::storage::Storage::open(&url, 1, std::sync::Arc::new(hearth::clock::SystemClock))
            .unwrap();
    let registry = Registry::r4();
    for (code, base) in [("8480-6", 0), ("8462-4", 100)] {
        for v in 0..40 {
            let observation = json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": base + v, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}});
            let index = extract(&registry, &observation, "http://localhost/fhir");
            storage
                .create("Observation", observation, index)
                .await
                .unwrap();
        }
    }
    let params: Vec<(String, String)> = [
        ("code", "http://loinc.org|8480-6"),
        ("value-quantity", "gt37"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let search = query::parse(&registry, vec!["Observation".into()], &params, "", true).unwrap();
    let plan = storage.explain(search.clone()).await.unwrap();
    assert!(
        plan.contains(
            "INDEX search_composite_lookup (resource_type=? AND code=? AND s1_value=? AND s2_high>?)"
        ),
        "{plan}"
    );
    assert_eq!(storage.matching(search, 100).await.unwrap().len(), 2);
}

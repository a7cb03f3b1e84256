//! Narrative (`text.div`) fidelity across XML. fhirbolt trims and re-indents the XHTML of a
//! narrative, which changes what a reader sees ("A x y" becomes "Axy"), so Hearth keeps the
//! narrative exactly as written: the raw `<div>` of an XML body goes into the JSON, and the JSON
//! `div` goes verbatim into XML output. Each substitution happens only when the narrative found
//! is the same apart from whitespace, so a mismatch falls back to fhirbolt's version.

use serde_json::Value;

/// The XHTML namespace of a narrative div.
pub const XHTML: &str = "http://www.w3.org/1999/xhtml";

/// Byte ranges of the outermost XHTML `<div>` elements of `xml`, in document order.
fn xhtml_divs(xml: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut from = 0;
    while let Some(found) = xml[from..].find("<div") {
        let start = from + found;
        let Some(tag_end) = xml[start..].find('>').map(|i| start + i) else {
            break;
        };
        let tag = &xml[start..tag_end];
        if !tag.contains(XHTML) || tag.ends_with('/') {
            from = tag_end;
            continue;
        }
        // Find the matching `</div>`, counting nested divs.
        let mut depth = 1;
        let mut at = tag_end + 1;
        let mut end = None;
        while depth > 0 {
            let open = xml[at..].find("<div").map(|i| at + i);
            let Some(close) = xml[at..].find("</div>").map(|i| at + i) else {
                break;
            };
            match open {
                Some(open) if open < close => {
                    let open_end = xml[open..].find('>').map_or(xml.len(), |i| open + i);
                    if !xml[open..open_end].ends_with('/') {
                        depth += 1;
                    }
                    at = open_end;
                }
                _ => {
                    depth -= 1;
                    at = close + "</div>".len();
                    if depth == 0 {
                        end = Some(at);
                    }
                }
            }
        }
        let Some(end) = end else { break };
        ranges.push(start..end);
        from = end;
    }
    ranges
}

fn collect_divs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(fields) => {
            for (key, child) in fields {
                if key == "text"
                    && let Some(div) = child.get("div").and_then(Value::as_str)
                {
                    out.push(div);
                }
                collect_divs(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_divs(item, out)),
        _ => {}
    }
}

fn collect_divs_mut<'a>(value: &'a mut Value, out: &mut Vec<&'a mut Value>) {
    match value {
        Value::Object(fields) => {
            for (key, child) in fields.iter_mut() {
                if key == "text" {
                    if let Some(div) = child.as_object_mut().and_then(|t| t.get_mut("div")) {
                        out.push(div);
                    }
                } else {
                    collect_divs_mut(child, out);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| collect_divs_mut(item, out)),
        _ => {}
    }
}

fn same_apart_from_whitespace(a: &str, b: &str) -> bool {
    a.chars()
        .filter(|c| !c.is_whitespace())
        .eq(b.chars().filter(|c| !c.is_whitespace()))
}

/// Replaces the narratives fhirbolt parsed from `xml` with their source text.
pub fn keep_source_divs(xml: &str, value: &mut Value) {
    let ranges = xhtml_divs(xml);
    if ranges.is_empty() {
        return;
    }
    let mut divs = Vec::new();
    // Contained resources sit inside `contained`, which `collect_divs_mut` walks after `text`,
    // matching the XML element order.
    collect_divs_mut(value, &mut divs);
    if divs.len() != ranges.len() {
        return;
    }
    for (div, range) in divs.into_iter().zip(ranges) {
        let source = &xml[range];
        if div
            .as_str()
            .is_some_and(|parsed| same_apart_from_whitespace(parsed, source))
        {
            *div = Value::String(source.to_owned());
        }
    }
}

/// Puts the JSON narratives of `ordered` (in XML element order) back into `xml` verbatim.
pub fn restore_divs(xml: &str, ordered: &Value) -> String {
    let ranges = xhtml_divs(xml);
    let mut divs = Vec::new();
    collect_divs(ordered, &mut divs);
    if divs.len() != ranges.len() {
        return xml.to_owned();
    }
    let mut out = String::with_capacity(xml.len());
    let mut last = 0;
    for (div, range) in divs.into_iter().zip(ranges) {
        out.push_str(&xml[last..range.start]);
        if div.contains(XHTML) && same_apart_from_whitespace(div, &xml[range.clone()]) {
            out.push_str(div);
        } else {
            out.push_str(&xml[range.clone()]);
        }
        last = range.end;
    }
    out.push_str(&xml[last..]);
    out
}

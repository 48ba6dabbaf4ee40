//! The index template installed before the first document is sent: it covers every daily
//! index `<Index>_cases_*` and fixes the mappings so that no tracer's record can conflict
//! with another's.
//!
//! Conflicts come from `tracer_data`: its fields differ per tracer, and one name may hold a
//! string in one tracer and a list of objects in another (`stack`), which dynamic mapping
//! refuses (`mapper_parsing_exception`) for whichever tracer comes second in a day's index.
//! The template maps `tracer_data` as one `flattened` field (Elasticsearch 7.3+;
//! `flat_object` on OpenSearch 2.7+): every leaf is indexed as a keyword under its dotted
//! path, whatever its shape, so queries such as `tracer_data.linkstatus:*down*` work and no
//! shape can conflict. Leaves longer than [`LEAF_CHARS`] stay in `_source` but are not
//! indexed (stacks, `content`), as HUATUO's own records show them under `_ignored`. The common
//! fields get fixed types: the times as dates, names as text with a `keyword` sub-field (what
//! HUATUO's queries such as `region.keyword:…` use).

use serde_json::{json, Value as Json};

/// Longest `tracer_data` leaf indexed, in characters (a keyword term holds at most 32766
/// bytes, and a character takes up to 4).
pub const LEAF_CHARS: u32 = 8191;

/// The name of the template for the index prefix `index`.
pub fn name(index: &str) -> String {
    format!("{index}_cases")
}

/// Whether the cluster's `GET /` answer names OpenSearch.
pub fn is_opensearch(root: &Json) -> bool {
    root.pointer("/version/distribution").and_then(Json::as_str) == Some("opensearch")
}

/// The composable index template (`PUT _index_template/<name>`) for the daily indices of
/// `index`, for OpenSearch when `opensearch`.
pub fn body(index: &str, opensearch: bool) -> Json {
    let text = json!({
        "type": "text",
        "fields": { "keyword": { "type": "keyword", "ignore_above": 256 } }
    });
    let record_time = json!({
        "type": "date",
        "format": "yyyy-MM-dd HH:mm:ss.SSS Z||strict_date_optional_time||epoch_millis"
    });
    let tracer_data = if opensearch {
        json!({ "type": "flat_object" })
    } else {
        json!({ "type": "flattened", "ignore_above": LEAF_CHARS })
    };
    json!({
        "index_patterns": [format!("{index}_cases_*")],
        "priority": 200,
        "template": {
            "settings": { "index.mapping.ignore_malformed": true },
            "mappings": {
                "dynamic_templates": [
                    { "strings": { "match_mapping_type": "string", "mapping": text } }
                ],
                "properties": {
                    "hostname": text,
                    "region": text,
                    "tracer_name": text,
                    "tracer_id": { "type": "keyword" },
                    "tracer_type": { "type": "keyword" },
                    "time": record_time,
                    "tracer_time": record_time,
                    "uploaded_time": { "type": "date", "format": "strict_date_optional_time" },
                    "es_index_time": { "type": "date", "format": "epoch_millis" },
                    "tracer_data": tracer_data
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_covers_the_daily_indices_and_flattens_tracer_data() {
        let es = body("huatuo_bamai", false);
        assert_eq!(es["index_patterns"], json!(["huatuo_bamai_cases_*"]));
        let props = &es["template"]["mappings"]["properties"];
        assert_eq!(props["tracer_data"]["type"], "flattened");
        assert_eq!(props["es_index_time"]["format"], "epoch_millis");
        let os = body("huatuo_bamai", true);
        assert_eq!(
            os["template"]["mappings"]["properties"]["tracer_data"]["type"],
            "flat_object"
        );
        assert!(is_opensearch(
            &json!({"version": {"distribution": "opensearch", "number": "2.11.0"}})
        ));
        assert!(!is_opensearch(&json!({"version": {"number": "8.13.0"}})));
    }
}

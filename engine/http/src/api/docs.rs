//! `docs/API.md`, rendered from the OpenAPI document: one section per route with its
//! parameters and responses, then the error codes. A test keeps the committed file equal to
//! this rendering.

use serde_json::Value as Json;
use std::fmt::Write;

const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

fn text(value: &Json) -> &str {
    value.as_str().unwrap_or("")
}

/// Follows a local `$ref` (`#/components/...`) to what it names.
fn resolve<'a>(doc: &'a Json, value: &'a Json) -> &'a Json {
    match value.get("$ref").and_then(Json::as_str) {
        Some(path) => path
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |node, key| &node[key]),
        None => value,
    }
}

fn schema_name(value: &Json) -> String {
    match value.get("$ref").and_then(Json::as_str) {
        Some(path) => format!("`{}`", path.rsplit('/').next().unwrap_or(path)),
        None => format!("`{}`", text(&value["type"])),
    }
}

/// The (method, path) pairs the document describes, in document order.
pub fn documented_routes(doc: &Json) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if item.get(*method).is_some() {
                    routes.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    routes
}

/// Renders the Markdown reference of `doc`.
pub fn render(doc: &Json) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HTTP API\n\n<!-- Generated from engine/http/openapi.json by \
         `cargo run -p huatuo-http --example api_doc`; a test keeps it current. -->\n\n{}\n\n\
         The document itself is served at `GET /openapi.json`. Routes marked 🔒 need \
         `Authorization: Bearer <token>`.\n",
        text(&doc["info"]["description"])
    );
    let Some(paths) = doc["paths"].as_object() else {
        return out;
    };
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let locked = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let _ = writeln!(
                out,
                "## `{} {path}`{}\n\n{}\n",
                method.to_uppercase(),
                if locked { " 🔒" } else { "" },
                text(&op["summary"])
            );
            let params: Vec<&Json> = item["parameters"]
                .as_array()
                .into_iter()
                .chain(op["parameters"].as_array())
                .flatten()
                .map(|p| resolve(doc, p))
                .collect();
            for p in params {
                let schema = &p["schema"];
                let pattern = schema["pattern"]
                    .as_str()
                    .map(|r| format!(", pattern `{r}`"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "- {} parameter `{}`: {}{pattern}",
                    text(&p["in"]),
                    text(&p["name"]),
                    text(&schema["type"])
                );
            }
            if let Some(body) = op.get("requestBody") {
                if let Some((media, content)) =
                    body["content"].as_object().and_then(|c| c.iter().next())
                {
                    let _ = writeln!(
                        out,
                        "- body ({media}{}): {}",
                        if body["required"] == true {
                            ", required"
                        } else {
                            ""
                        },
                        schema_name(&content["schema"])
                    );
                }
            }
            let _ = writeln!(out, "\n| status | meaning |\n|---|---|");
            if let Some(responses) = op["responses"].as_object() {
                for (status, response) in responses {
                    let response = resolve(doc, response);
                    let _ = writeln!(out, "| {status} | {} |", text(&response["description"]));
                }
            }
            out.push('\n');
        }
    }
    let _ = writeln!(
        out,
        "## Error codes\n\n| code | status | meaning |\n|---|---|---|"
    );
    if let Some(codes) = doc["x-error-codes"].as_object() {
        for (code, about) in codes {
            let _ = writeln!(
                out,
                "| `{code}` | {} | {} |",
                about["httpStatus"],
                text(&about["description"])
            );
        }
    }
    let _ = writeln!(out, "\n## Schemas\n");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Json::as_str).collect())
                .unwrap_or_default();
            let _ = writeln!(out, "### `{name}`\n");
            if let Some(values) = schema["enum"].as_array() {
                let values: Vec<String> = values.iter().map(|v| format!("`{}`", text(v))).collect();
                let _ = writeln!(out, "One of {}.\n", values.join(", "));
                continue;
            }
            let Some(props) = schema["properties"].as_object() else {
                continue;
            };
            let _ = writeln!(
                out,
                "| field | type | required | notes |\n|---|---|---|---|"
            );
            for (field, prop) in props {
                let kind = if prop.get("$ref").is_some() {
                    schema_name(prop)
                } else if let Some(values) = prop["enum"].as_array() {
                    values
                        .iter()
                        .filter_map(Json::as_str)
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(" \\| ")
                } else {
                    schema_name(prop)
                };
                let mut notes = text(&prop["description"]).to_string();
                if let Some(pattern) = prop["pattern"].as_str() {
                    notes = format!("{notes} pattern `{pattern}`").trim().to_string();
                }
                let _ = writeln!(
                    out,
                    "| `{field}` | {kind} | {} | {notes} |",
                    if required.contains(&field.as_str()) {
                        "yes"
                    } else {
                        ""
                    }
                );
            }
            out.push('\n');
        }
    }
    out
}

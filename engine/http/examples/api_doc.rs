//! Prints `docs/API.md` rendered from the OpenAPI document:
//! `cargo run -p huatuo-http --example api_doc > docs/API.md`.

fn main() {
    match serde_json::from_str(huatuo_http::api::OPENAPI) {
        Ok(doc) => print!("{}", huatuo_http::api::docs::render(&doc)),
        Err(e) => {
            eprintln!("engine/http/openapi.json: {e}");
            std::process::exit(1);
        }
    }
}

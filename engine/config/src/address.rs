//! `Storage.ES.Address`: one Elasticsearch/OpenSearch URL or several separated by commas (as
//! HUATUO splits it), each `http://` or `https://`. HUATUO's default `:9200` means port 9200
//! of localhost, and a bare `host:port` means http.

/// The normalised base URLs of an `Address` value (no trailing `/`), in the order written;
/// an error naming the first element that is not an http(s) URL.
pub fn es_addresses(text: &str) -> Result<Vec<String>, String> {
    let mut urls = Vec::new();
    for (index, element) in text.split(',').enumerate() {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        let url = base_url(element).map_err(|why| {
            let at = if text.contains(',') {
                format!(" (address {})", index + 1)
            } else {
                String::new()
            };
            format!("`{element}`{at} is not an http(s) URL: {why}")
        })?;
        urls.push(url);
    }
    if urls.is_empty() {
        return Err("no address given: write http://host:port or https://host:port".into());
    }
    Ok(urls)
}

/// One element: a URL with an http(s) scheme, a host and at most a path prefix.
fn base_url(element: &str) -> Result<String, String> {
    let element = element.trim_end_matches('/');
    let with_scheme = match element.split_once("://") {
        Some(_) => element.to_string(),
        // Without a scheme only `host[:port]` (or `:port`) is accepted: `ftp//es:9200` would
        // otherwise read as host `ftp` with a path.
        None if element.contains('/') => {
            return Err("write http://host:port or https://host:port".into())
        }
        None if element.starts_with(':') => format!("http://127.0.0.1{element}"),
        None => format!("http://{element}"),
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is `{}`, not http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a query or fragment is not allowed".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials belong in Username and Password, not in the URL".into());
    }
    Ok(with_scheme)
}

#[cfg(test)]
mod tests {
    use super::es_addresses;

    #[test]
    fn addresses_are_normalised() {
        let one = |text: &str| es_addresses(text).map(|mut v| v.remove(0));
        assert_eq!(one(":9200").unwrap(), "http://127.0.0.1:9200");
        assert_eq!(one("es:9200/").unwrap(), "http://es:9200");
        assert_eq!(
            one("https://10.0.0.1:9200").unwrap(),
            "https://10.0.0.1:9200"
        );
        assert_eq!(one("http://es/prefix").unwrap(), "http://es/prefix");
        assert_eq!(
            es_addresses("https://a:9200, https://b:9200,").unwrap(),
            ["https://a:9200", "https://b:9200"]
        );
    }

    #[test]
    fn what_is_not_an_http_url_is_refused_with_the_reason() {
        for (bad, why) in [
            ("", "no address"),
            (" , ", "no address"),
            (
                "ftp//127.0.0.1:9200",
                "`ftp//127.0.0.1:9200` is not an http(s) URL",
            ),
            ("ftp://x", "the scheme is `ftp`"),
            ("http://:9200", "not an http(s) URL"),
            ("http://es:99999", "invalid port"),
            ("http://es:9200?x=1", "query"),
            ("http://u:p@es:9200", "Username and Password"),
            ("http://a:9200,ftp://b", "(address 2)"),
        ] {
            let err = es_addresses(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}

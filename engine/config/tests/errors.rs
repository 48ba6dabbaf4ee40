//! Every problem in a config file is reported, each with its code, `file:line:col` and hint.

use huatuo_config::load_str;
use huatuo_dsl::diag::Diagnostic;

fn errors(text: &str) -> Vec<Diagnostic> {
    match load_str("t.conf", text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(diags) => diags,
    }
}

fn only(text: &str) -> Diagnostic {
    let mut diags = errors(text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    diags.remove(0)
}

#[test]
fn syntax_error_points_at_its_line_and_column() {
    let d = only("[Log]\nLevel = \"Info\"\nFile = = \"x\"\n");
    assert_eq!(d.code, "config-syntax");
    assert_eq!(d.location(), "t.conf:3:8");
    assert!(!d.message.contains('\n'), "{}", d.message);
}

#[test]
fn unknown_key_names_the_full_path_and_the_nearest_key() {
    let d = only("[AutoTracing.CPUSys]\n    SysThreshhold = 50\n");
    assert_eq!(d.code, "unknown-config-key");
    assert_eq!(d.location(), "t.conf:2:5");
    assert_eq!(
        d.message,
        "unknown config key `AutoTracing.CPUSys.SysThreshhold`"
    );
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `AutoTracing.CPUSys.SysThreshold`?")
    );
}

#[test]
fn unknown_section_suggests_the_nearest_section() {
    let d = only("[Storage.LocalFiles]\nPath = \"x\"\n");
    assert_eq!(d.code, "unknown-config-key");
    assert_eq!(d.location(), "t.conf:1:10");
    assert_eq!(d.message, "unknown config section `[Storage.LocalFiles]`");
    assert_eq!(d.help.as_deref(), Some("did you mean `Storage.LocalFile`?"));
}

#[test]
fn unknown_key_in_a_filter_rule_is_reported() {
    let d = only("[[AutoTracing.CPUIdle.Filter.Excluded]]\nField = \"container_qos\"\nPatern = \"x\"\nPattern = \"y\"\n");
    assert_eq!(d.code, "unknown-config-key");
    assert_eq!(d.location(), "t.conf:3:1");
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `AutoTracing.CPUIdle.Filter.Excluded.Pattern`?")
    );
}

#[test]
fn wrong_type_names_key_expected_and_found() {
    let d = only("[AutoTracing.Dload]\nInterval = \"10s\"\n");
    assert_eq!(d.code, "config-type");
    assert_eq!(d.location(), "t.conf:2:12");
    assert_eq!(
        d.message,
        "`AutoTracing.Dload.Interval` expects an integer, found a string"
    );

    let d = only("BlackList = [\"a\", 3]\n");
    assert_eq!(d.code, "config-type");
    assert_eq!(d.location(), "t.conf:1:19");
    assert!(
        d.message.contains("an integer at position 2"),
        "{}",
        d.message
    );

    let d = only("Log = 3\n");
    assert_eq!(d.code, "config-type");
    assert_eq!(
        d.message,
        "`Log` is a section and expects a table, found an integer"
    );
}

#[test]
fn a_float_key_accepts_an_integer_but_an_integer_key_rejects_a_float() {
    assert!(load_str("t.conf", "[AutoTracing.Dload]\nThresholdLoad = 3\n").is_ok());
    let d = only("[EventsWatch]\nKeepAliveInterval = 2.5\n");
    assert_eq!(d.code, "config-type");
    assert!(d.message.contains("found a float"));
}

#[test]
fn bad_values_are_config_value_errors() {
    let d = only("[AutoTracing.Dload]\nIntervalTracing = -5\n");
    assert_eq!(d.code, "config-value");
    assert_eq!(d.location(), "t.conf:2:19");
    assert!(d.message.contains("must not be negative"), "{}", d.message);

    let d = only("[RuntimeCgroup]\nLimitCPU = 0\n");
    assert!(d.message.contains("greater than 0"), "{}", d.message);

    let d = only("[EventsWatch]\nKeepAliveInterval = 0\n");
    assert!(
        d.message.contains("from 1 to 3600, found 0"),
        "{}",
        d.message
    );

    let d = only("[APIServer]\nMaxConnections = 1000000\n");
    assert!(d.message.contains("from 8 to 65536"), "{}", d.message);
    assert_eq!(d.location(), "t.conf:2:18");

    let d = only("[Pod]\nKubeletAuthorizedPort = 70000\n");
    assert!(d.message.contains("port"), "{}", d.message);

    let d = only("[Log]\nLevel = \"Verbose\"\n");
    assert_eq!(d.code, "config-value");
    assert!(d.message.contains("Debug, Info"), "{}", d.message);

    // Case-insensitive like HUATUO.
    assert!(load_str("t.conf", "[Log]\nLevel = \"debug\"\n").is_ok());

    let d =
        only("[EventTracing.NetRxLatency]\nExcludedContainerQos = [\"besteffort\", \"gold\"]\n");
    assert_eq!(d.code, "config-value");
    assert_eq!(d.location(), "t.conf:2:39");
}

#[test]
fn invalid_regex_is_a_config_value_error() {
    let d = only("[MetricCollector.Qdisc]\nDeviceExcluded = \"^(eth\"\n");
    assert_eq!(d.code, "config-value");
    assert_eq!(d.location(), "t.conf:2:18");
    assert_eq!(
        d.message,
        "`MetricCollector.Qdisc.DeviceExcluded`: the value is not a valid regular expression: unclosed group"
    );

    let d = only("[AutoTracing]\nIssuesList = [[\"ok\", \"a\"], [\"bad\", \"(\"]]\n");
    assert_eq!(d.code, "config-value");
    assert_eq!(d.location(), "t.conf:2:28");
    assert!(d.message.contains("`bad`"), "{}", d.message);
}

#[test]
fn huge_regex_is_rejected_by_the_size_limit() {
    let text = format!(
        "[MetricCollector.Netstat]\nIncluded = \"{}\"\n",
        "(a|b|c|d){1000}".repeat(20)
    );
    let d = only(&text);
    assert_eq!(d.code, "config-value");
    assert!(d.message.contains("regular expression"), "{}", d.message);
}

#[test]
fn overflowing_durations_are_rejected() {
    // 10^13 milliseconds do not fit in i64 nanoseconds.
    let d = only("[AutoTracing.IOTracing]\nAwaitThreshold = 10000000000000\n");
    assert_eq!(d.code, "config-value");
    assert!(d.message.contains("too large"), "{}", d.message);
}

#[test]
fn filter_rules_check_field_and_pattern() {
    let text = "[[AutoTracing.CPUIdle.Filter.Included]]\nField = \"container_name\"\nPattern = \"(\"\n[[AutoTracing.CPUIdle.Filter.Excluded]]\nField = \"container_qos\"\n";
    let diags = errors(text);
    let places: Vec<_> = diags.iter().map(|d| (d.location(), d.code)).collect();
    assert_eq!(
        places,
        [
            ("t.conf:2:9".to_string(), "config-value"),
            ("t.conf:3:11".to_string(), "config-value"),
            ("t.conf:4:1".to_string(), "config-value"),
        ]
    );
    assert!(
        diags[0].message.contains("container_qos"),
        "{}",
        diags[0].message
    );
    assert!(diags[2].message.contains("both `Field` and `Pattern`"));
}

#[test]
fn all_problems_are_reported_in_one_pass_in_file_order() {
    let text = "\
BlackList = \"netdev_hw\"
[Log]
Levle = \"Info\"
[AutoTracing.CPUIdle]
Interval = -1
UserThreshold = \"high\"
[MetricCollector.Vmstat]
IncludedOnHost = \"[\"
";
    let diags = errors(text);
    let got: Vec<_> = diags
        .iter()
        .map(|d| format!("{} {}", d.location(), d.code))
        .collect();
    assert_eq!(
        got,
        [
            "t.conf:1:13 config-type",
            "t.conf:3:1 unknown-config-key",
            "t.conf:5:12 config-value",
            "t.conf:6:17 config-type",
            "t.conf:8:18 config-value",
        ]
    );
    assert_eq!(diags[1].help.as_deref(), Some("did you mean `Log.Level`?"));
}

#[test]
fn columns_count_characters_not_bytes() {
    let d = only("# 配置\n[Log] # 日志\nLevel = 1\n");
    assert_eq!(d.location(), "t.conf:3:9");
    let d = only("Log = { Level = \"Info\", \"Fïle\" = 1 }\n");
    assert_eq!(d.code, "unknown-config-key");
    assert_eq!(d.location(), "t.conf:1:25");
}

#[test]
fn unknown_key_without_a_close_match_lists_the_known_names() {
    let d = only("[EventsWatch]\nZzz = 1\n");
    assert_eq!(
        d.help.as_deref(),
        Some("known names in `[EventsWatch]`: MaxClients, KeepAliveInterval, ReplayBuffer")
    );
    let d = only("Qqq = 1\n");
    assert!(d.help.as_deref().is_some_and(
        |h| h.starts_with("known names in the top level: BlackList, ShutdownTimeout, Log,")
    ));
}

#[test]
fn a_key_in_the_wrong_section_suggests_where_it_belongs() {
    let d = only("[AutoTracing.MemoryBurst]\nIssuesList = []\n");
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `AutoTracing.IssuesList`?")
    );
}

#[test]
fn counts_sizes_and_intervals_outside_their_range_name_key_place_and_range() {
    for (text, location, message) in [
        (
            "[Storage.LocalFile]\nMaxRotation = 1000000000000\n",
            "t.conf:2:15",
            "`Storage.LocalFile.MaxRotation`: must be from 0 to 1000, found 1000000000000",
        ),
        (
            "[Storage.LocalFile]\n  RotationSize = 0\n",
            "t.conf:2:18",
            "`Storage.LocalFile.RotationSize`: must be from 1 to 10240, found 0",
        ),
        (
            "[Storage.LocalFile]\nRotationSize = -1\n",
            "t.conf:2:16",
            "`Storage.LocalFile.RotationSize`: must be from 1 to 10240, found -1",
        ),
        (
            "[AutoTracing.CPUSys]\nInterval = 0\n",
            "t.conf:2:12",
            "`AutoTracing.CPUSys.Interval`: must be from 1 to 86400, found 0",
        ),
        (
            "[AutoTracing.IOTracing]\nRunTracingToolTimeout = 100000\n",
            "t.conf:2:25",
            "`AutoTracing.IOTracing.RunTracingToolTimeout`: must be from 1 to 600, found 100000",
        ),
        (
            "[AutoTracing.MemoryBurst]\nSlidingWindowLength = 100000000\n",
            "t.conf:2:23",
            "`AutoTracing.MemoryBurst.SlidingWindowLength`: must be from 1 to 3600, found 100000000",
        ),
        (
            "[EventsWatch]\nMaxClients = 0\n",
            "t.conf:2:14",
            "`EventsWatch.MaxClients`: must be from 1 to 10000, found 0",
        ),
        (
            "ShutdownTimeout = 86400\n",
            "t.conf:1:19",
            "`ShutdownTimeout`: must be from 1 to 300, found 86400",
        ),
    ] {
        let d = only(text);
        assert_eq!(d.code, "config-value", "{text}");
        assert_eq!(d.location(), location, "{text}");
        assert_eq!(d.message, message);
    }
    let edges =
        "ShutdownTimeout = 300\n[Storage.LocalFile]\nMaxRotation = 0\nRotationSize = 10240\n";
    assert!(load_str("t.conf", edges).is_ok());
}

#[test]
fn an_es_address_that_is_not_an_http_url_is_an_error_at_its_place() {
    let d = only("[Storage.ES]\nAddress = \"ftp//127.0.0.1:9200\"\n");
    assert_eq!(d.code, "config-value");
    assert_eq!(d.location(), "t.conf:2:11");
    assert!(
        d.message
            .starts_with("`Storage.ES.Address`: `ftp//127.0.0.1:9200` is not an http(s) URL"),
        "{}",
        d.message
    );
    let d = only("[Storage.ES]\nAddress = \"ftp://x\"\n");
    assert_eq!(d.location(), "t.conf:2:11");
    assert!(d.message.contains("the scheme is `ftp`"), "{}", d.message);
    for good in [
        "",
        ":9200",
        "https://a:9200,https://b:9200",
        "es.example:9200",
    ] {
        let text = format!("[Storage.ES]\nAddress = \"{good}\"\n");
        assert!(load_str("t.conf", &text).is_ok(), "{good}");
    }
}

#[test]
fn script_timeout_outside_its_bounds_is_an_error_naming_the_range() {
    for (text, found) in [("0", "0"), ("60000", "60000")] {
        let d = only(&format!("[Rules]\n    ScriptTimeout = {text}\n"));
        assert_eq!(d.location(), "t.conf:2:21", "{d:?}");
        assert!(d.message.contains("Rules.ScriptTimeout"), "{}", d.message);
        assert!(
            d.message
                .contains(&format!("must be from 1 to 500, found {found}")),
            "{}",
            d.message
        );
    }
    let config = load_str("t.conf", "[Rules]\n    ScriptTimeout = 250\n").unwrap();
    assert_eq!(config.rules.script_timeout, 250);
}

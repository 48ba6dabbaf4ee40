//! The functions rules can call: the single source of truth shared by the checker, the
//! evaluator (which dispatches on [`Builtin::name`]) and the generated rule reference.

use crate::units::Dim;

/// What a parameter of a builtin accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// Any value.
    Any,
    /// A number of any dimension.
    Number,
    /// A number of exactly this dimension (a unitless `0` fits every dimension).
    NumberOf(Dim),
    /// A number of one of these dimensions.
    NumberIn(&'static [Dim]),
    /// A string literal written in the rule (a config key path).
    StrLiteral,
    /// A list of anything.
    List,
    /// A list of numbers of one dimension.
    NumberList,
    /// A number, or a list of numbers.
    NumberOrNumberList,
    /// A string or a list.
    StrOrList,
    /// A list of booleans.
    BoolList,
    /// A number with the dimension of the argument at this index.
    SameDimAs(usize),
    /// A regex string, or a list of regex strings (literals are compiled by the checker).
    Regexes,
    /// A constant list of HUATUO `{Field, Pattern}` rules (structured config such as
    /// `AutoTracing.CPUIdle.Filter.Included`), or of `[field, pattern]` pairs.
    FieldPatterns,
}

/// One parameter of a builtin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Name used for named arguments (`n: 5`).
    pub name: &'static str,
    /// What the argument may be.
    pub accepts: Accepts,
    /// Whether the argument may be left out.
    pub optional: bool,
}

/// How the type of a call's result follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// The type of the argument at this index.
    SameAs(usize),
    /// The per-second rate of the numeric argument at this index: Count → per second,
    /// Bytes → bytes per second.
    RateOf(usize),
    /// A number of this dimension.
    Number(Dim),
    /// A boolean.
    Bool,
    /// A list whose elements have the type of the argument at this index.
    ListOf(usize),
    /// The element type of the list argument at this index.
    ElementOf(usize),
    /// The element type of the argument at this index when it is a list, else its type.
    Scalar(usize),
    /// The type and dimension of the config key named by the first argument.
    /// A string.
    Str,
    ConfigKey,
}

/// A function rules can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// The name rules write; stable, the evaluator dispatches on it.
    pub name: &'static str,
    /// Parameters, positional in this order or by name.
    pub params: &'static [Param],
    /// How the result type is derived.
    pub returns: Returns,
    /// Keeps per-entity state across samples: each call site gets its own state slot.
    pub stateful: bool,
    /// One line for the rule reference.
    pub description: &'static str,
}

const fn req(name: &'static str, accepts: Accepts) -> Param {
    Param {
        name,
        accepts,
        optional: false,
    }
}

const X_NUM: &[Param] = &[req("x", Accepts::Number)];
const LIST_ANY: &[Param] = &[req("list", Accepts::List)];
const LIST_NUM: &[Param] = &[req("list", Accepts::NumberList)];
const LIST_BOOL: &[Param] = &[req("list", Accepts::BoolList)];
const EXTREME: &[Param] = &[
    req("a", Accepts::NumberOrNumberList),
    Param {
        name: "b",
        accepts: Accepts::SameDimAs(0),
        optional: true,
    },
];
const RATE_DIMS: &[Dim] = &[Dim::Count, Dim::Bytes];

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "config",
        params: &[
            req("key", Accepts::StrLiteral),
            Param {
                name: "default",
                accepts: Accepts::Any,
                optional: true,
            },
        ],
        returns: Returns::ConfigKey,
        stateful: false,
        description: "The value of a huatuo-bamai.conf key; `default` (or the key's built-in default) when the file leaves it unset.",
    },
    Builtin {
        name: "delta",
        params: X_NUM,
        returns: Returns::SameAs(0),
        stateful: true,
        description: "x minus the previous x of the same entity; the first sample yields no value.",
    },
    Builtin {
        name: "rate",
        params: &[req("x", Accepts::NumberIn(RATE_DIMS))],
        returns: Returns::RateOf(0),
        stateful: true,
        description: "delta(x) per second of sample time, for counts and sizes (for durations use percent(delta(t), delta(now))); the first sample yields no value.",
    },
    Builtin {
        name: "percent",
        params: &[req("part", Accepts::Number), req("whole", Accepts::SameDimAs(0))],
        returns: Returns::Number(Dim::Percent),
        stateful: false,
        description: "100 × part / whole as a percentage, 0 when whole is 0; part and whole have one dimension.",
    },
    Builtin {
        name: "ema",
        params: &[req("x", Accepts::Number), req("n", Accepts::NumberOf(Dim::Count))],
        returns: Returns::SameAs(0),
        stateful: true,
        description: "Exponential moving average of x over n samples in the load-average form ema·(n−1)/n + x/n, seeded by the first x.",
    },
    Builtin {
        name: "total",
        params: X_NUM,
        returns: Returns::SameAs(0),
        stateful: true,
        description: "The running sum of x over every sample of the same entity (a counter of events with `total(1)`).",
    },
    Builtin {
        name: "window",
        params: &[req("x", Accepts::Any), req("n", Accepts::NumberOf(Dim::Count))],
        returns: Returns::ListOf(0),
        stateful: true,
        description: "The last n values of x for the same entity, oldest first (fewer until n samples were seen).",
    },
    Builtin {
        name: "changed",
        params: &[req("x", Accepts::Any)],
        returns: Returns::Bool,
        stateful: true,
        description: "True when x differs from its previous value for the same entity; the first sample yields no value.",
    },
    Builtin {
        name: "first",
        params: LIST_ANY,
        returns: Returns::ElementOf(0),
        stateful: false,
        description: "The first (oldest) element of a list; no value when empty.",
    },
    Builtin {
        name: "last",
        params: LIST_ANY,
        returns: Returns::ElementOf(0),
        stateful: false,
        description: "The last (newest) element of a list; no value when empty.",
    },
    Builtin {
        name: "min",
        params: EXTREME,
        returns: Returns::Scalar(0),
        stateful: false,
        description: "The smallest number of a list, or the smaller of two numbers; no value when empty.",
    },
    Builtin {
        name: "max",
        params: EXTREME,
        returns: Returns::Scalar(0),
        stateful: false,
        description: "The largest number of a list, or the larger of two numbers; no value when empty.",
    },
    Builtin {
        name: "avg",
        params: LIST_NUM,
        returns: Returns::ElementOf(0),
        stateful: false,
        description: "The mean of a list of numbers; no value when empty.",
    },
    Builtin {
        name: "sum",
        params: LIST_NUM,
        returns: Returns::ElementOf(0),
        stateful: false,
        description: "The sum of a list of numbers; 0 when empty.",
    },
    Builtin {
        name: "len",
        params: &[req("x", Accepts::StrOrList)],
        returns: Returns::Number(Dim::Count),
        stateful: false,
        description: "The number of elements of a list, or of characters of a string.",
    },
    Builtin {
        name: "all",
        params: LIST_BOOL,
        returns: Returns::Bool,
        stateful: false,
        description: "True when every element of a list of booleans is true (and the list is not empty).",
    },
    Builtin {
        name: "any",
        params: LIST_BOOL,
        returns: Returns::Bool,
        stateful: false,
        description: "True when at least one element of a list of booleans is true.",
    },
    Builtin {
        name: "abs",
        params: X_NUM,
        returns: Returns::SameAs(0),
        stateful: false,
        description: "The absolute value of x.",
    },
    Builtin {
        name: "join",
        params: &[req("list", Accepts::List), req("separator", Accepts::StrLiteral)],
        returns: Returns::Str,
        stateful: false,
        description: "The elements of a list as one string, separated by separator (`join(stack, \"\\n\")`: a stack's frames one a line, as HUATUO writes stacks); an empty string for an empty list.",
    },
    Builtin {
        name: "reverse_dns",
        params: &[req("ip", Accepts::Any), req("enabled", Accepts::Any)],
        returns: Returns::Str,
        stateful: false,
        description: "The host name of the address ip by reverse DNS (the system resolver: /etc/hosts, then DNS), resolved off the hot path: names are cached (10 min, failures 1 min, 4096 addresses) and looked up by 2 worker threads, so the first record of an address has an empty name and later ones get it; empty when the address has no name; missing when enabled is false.",
    },
    Builtin {
        name: "matches_any",
        params: &[req("s", Accepts::StrOrList), req("patterns", Accepts::Regexes)],
        returns: Returns::Bool,
        stateful: false,
        description: "True when s (or any string of a list s) matches at least one regex of patterns (a list or a single regex); false when s is missing.",
    },
    Builtin {
        name: "contains",
        params: &[req("s", Accepts::StrOrList), req("needle", Accepts::Any)],
        returns: Returns::Bool,
        stateful: false,
        description: "True when the string s contains the substring needle, or the list s contains the element needle; false when either is missing.",
    },
    Builtin {
        name: "filter_allows",
        params: &[
            req("included", Accepts::FieldPatterns),
            Param {
                name: "excluded",
                accepts: Accepts::FieldPatterns,
                optional: true,
            },
        ],
        returns: Returns::Bool,
        stateful: false,
        description: "HUATUO's Included/Excluded filter over the sample: true when it matches a rule of `included` (or `included` is empty) and no rule of `excluded`. Rules are `{Field, Pattern}` tables from config or `[field, pattern]` pairs; Field is a label or field of the sample (HUATUO's container_hostname, container_host_namespace, container_qos name the container labels); a sample without it matches no rule.",
    },
];

/// Every builtin function, in the order of the rule reference.
pub fn builtins() -> &'static [Builtin] {
    BUILTINS
}

/// Looks up a builtin by name.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

impl Builtin {
    /// The call as a rule reference shows it: `ema(x, n)`, optional parameters with `?`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| format!("{}{}", p.name, if p.optional { "?" } else { "" }))
            .collect();
        format!("{}({})", self.name, params.join(", "))
    }
}

/// The builtin functions as a Markdown table, for the generated rule reference.
pub fn reference_markdown() -> String {
    let mut out = String::from("| function | keeps state | what it does |\n|---|---|---|\n");
    for b in builtins() {
        let stateful = if b.stateful { "yes" } else { "" };
        out.push_str(&format!(
            "| `{}` | {stateful} | {} |\n",
            b.signature(),
            b.description
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_documented() {
        let mut names: Vec<_> = builtins().iter().map(|b| b.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate builtin name");
        assert!(builtins().iter().all(|b| !b.description.is_empty()));
    }

    #[test]
    fn result_rules_point_at_existing_parameters() {
        for b in builtins() {
            let index = match b.returns {
                Returns::SameAs(i) | Returns::RateOf(i) | Returns::ListOf(i) => Some(i),
                Returns::Scalar(i) => Some(i),
                Returns::ElementOf(i) => Some(i),
                _ => None,
            };
            if let Some(i) = index {
                assert!(
                    i < b.params.len(),
                    "{} returns from missing arg {i}",
                    b.name
                );
            }
        }
    }

    #[test]
    fn reference_lists_every_function_with_its_signature() {
        let table = reference_markdown();
        assert_eq!(table.lines().count(), builtins().len() + 2);
        assert!(table.contains("| `ema(x, n)` | yes | Exponential moving average"));
        assert!(table.contains("| `config(key, default?)` |  |"));
    }

    #[test]
    fn stateful_functions_are_the_ones_with_history() {
        let stateful: Vec<_> = builtins()
            .iter()
            .filter(|b| b.stateful)
            .map(|b| b.name)
            .collect();
        assert_eq!(
            stateful,
            ["delta", "rate", "ema", "total", "window", "changed"]
        );
        assert!(builtin("config").is_some_and(|b| !b.stateful));
        assert!(builtin("nope").is_none());
    }
}

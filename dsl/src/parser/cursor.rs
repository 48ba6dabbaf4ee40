//! Walks the children of a pest pair, skipping keywords and punctuation, which carry no
//! information once the grammar has matched.

use super::context::Ctx;
use super::Rule;
use pest::iterators::{Pair, Pairs};
use std::iter::Peekable;

/// Children of a pair with the uninformative ones filtered out.
type Meaningful<'i> = std::iter::Filter<Pairs<'i, Rule>, fn(&Pair<'i, Rule>) -> bool>;

/// The meaningful children of one pair.
pub(super) struct Cursor<'i, 'c> {
    pairs: Peekable<Meaningful<'i>>,
    parent: pest::Span<'i>,
    ctx: &'c Ctx<'c>,
}

/// Whether a pair carries information (keywords other than `none`, and punctuation, do not).
fn meaningful(pair: &Pair<'_, Rule>) -> bool {
    !matches!(
        pair.as_rule(),
        Rule::lbrace
            | Rule::rbrace
            | Rule::lparen
            | Rule::rparen
            | Rule::lbrack
            | Rule::rbrack
            | Rule::comma
            | Rule::assign
            | Rule::colon
            | Rule::EOI
            | Rule::kw_source
            | Rule::kw_every
            | Rule::kw_help
            | Rule::kw_param
            | Rule::kw_let
            | Rule::kw_script
            | Rule::kw_where
            | Rule::kw_when
            | Rule::kw_labels
            | Rule::kw_label
            | Rule::kw_scope
            | Rule::kw_histogram
            | Rule::kw_zones
            | Rule::kw_emit
            | Rule::kw_include
            | Rule::kw_exclude
            | Rule::kw_capture
            | Rule::kw_as
            | Rule::kw_cooldown
            | Rule::kw_backoff
            | Rule::kw_per
            | Rule::kw_limit
            | Rule::kw_burst
            | Rule::kw_issues
            | Rule::kw_fallback
            | Rule::kw_for
    )
}

impl<'i, 'c> Cursor<'i, 'c> {
    /// A cursor over the children of `pair`.
    pub fn new(ctx: &'c Ctx<'c>, pair: Pair<'i, Rule>) -> Self {
        let parent = pair.as_span();
        let keep: fn(&Pair<'i, Rule>) -> bool = meaningful;
        Cursor {
            pairs: pair.into_inner().filter(keep).peekable(),
            parent,
            ctx,
        }
    }

    /// The next child; reports a parser bug (and returns `None`) when there is none.
    pub fn next(&mut self) -> Option<Pair<'i, Rule>> {
        let next = self.pairs.next();
        if next.is_none() {
            self.bug();
        }
        next
    }

    /// The next child, if any.
    pub fn next_if_any(&mut self) -> Option<Pair<'i, Rule>> {
        self.pairs.next()
    }

    /// The next child if it is a `rule`.
    pub fn next_if(&mut self, rule: Rule) -> Option<Pair<'i, Rule>> {
        self.pairs.next_if(|p| p.as_rule() == rule)
    }

    /// Every remaining child that is a `rule`.
    pub fn take_all(&mut self, rule: Rule) -> Vec<Pair<'i, Rule>> {
        std::iter::from_fn(|| self.next_if(rule)).collect()
    }

    /// Reports that the tree does not have the shape the grammar promises.
    pub fn bug(&self) {
        let span = self.ctx.span(self.parent);
        self.ctx.report(self.ctx.error(
            "internal",
            span,
            "the parser met a tree shape it does not know (a bug in huatuo)",
        ));
    }
}

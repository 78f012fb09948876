//! The parse error shared by the crate's name vocabularies: enums whose
//! names are derived by strum (`EnumString`, `IntoStaticStr`,
//! `VariantNames`) name themselves here once ([`Vocabulary::WHAT`]) and get
//! one error text that says what was given and lists every valid name.
//!
//! ```text
//! #[derive(strum::EnumString, strum::IntoStaticStr, strum::VariantNames)]
//! #[strum(parse_err_ty = String, parse_err_fn = crate::vocabulary::unknown::<Self>)]
//! ```

/// An enum of names (`direction`, `next hop`) for [`unknown`].
pub(crate) trait Vocabulary: strum::VariantNames {
    /// What one value is, in words: `direction`, `next hop`.
    const WHAT: &'static str;
}

/// ``unknown direction `x` (ingress or egress)``: the error of parsing a
/// name of `T`.
pub(crate) fn unknown<T: Vocabulary>(given: &str) -> String {
    format!("unknown {} `{given}` ({})", T::WHAT, one_of(T::VARIANTS))
}

/// `a`, `a or b`, `a, b or c`.
pub(crate) fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_prose() {
        assert_eq!(one_of(&[]), "");
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
    }
}

//! Security labels on sensitive items (`meta.security`). A labelled item is shown only to
//! people cleared for every label it carries, whatever the sharing choices say.
//!
//! | label | codings recognised in `meta.security` |
//! |---|---|
//! | [`SecurityLabel::Safeguarding`] | [`LABEL_SYSTEM`]`#safeguarding`; v3-ActCode `SDV` (sexual assault, abuse or domestic violence) |
//! | [`SecurityLabel::SocialCare`] | [`LABEL_SYSTEM`]`#social-care` |
//! | [`SecurityLabel::SexualHealth`] | [`LABEL_SYSTEM`]`#sexual-health`; v3-ActCode `SEX` (sexuality and reproductive health), `STD`, `HIV` |
//! | [`SecurityLabel::MentalHealth`] | [`LABEL_SYSTEM`]`#mental-health`; v3-ActCode `PSY`, `MH` |
//! | [`SecurityLabel::Restricted`] | v3-Confidentiality `R` (restricted) or `V` (very restricted); any code of [`LABEL_SYSTEM`] this build does not know |
//!
//! v3-ActCode is `http://terminology.hl7.org/CodeSystem/v3-ActCode`; v3-Confidentiality is
//! `http://terminology.hl7.org/CodeSystem/v3-Confidentiality` (its `U`, `L`, `M`, `N` are
//! ordinary confidentiality and carry no restriction here). Other systems' codes (for
//! example the `HTEST` test-data marker or obligation codes) do not restrict access.
//! The passport writes [`SecurityLabel::coding`] (our own system) so that each label means
//! exactly one thing; the HL7 codes are read so that data from EPRs keeps its protection.

use serde_json::{Value, json};

/// Our own code system for passport security labels.
pub const LABEL_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-security-label";
pub const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const V3_CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityLabel {
    Safeguarding,
    SocialCare,
    SexualHealth,
    MentalHealth,
    Restricted,
}

impl SecurityLabel {
    pub const ALL: [SecurityLabel; 5] = [
        SecurityLabel::Safeguarding,
        SecurityLabel::SocialCare,
        SecurityLabel::SexualHealth,
        SecurityLabel::MentalHealth,
        SecurityLabel::Restricted,
    ];

    /// The code in [`LABEL_SYSTEM`].
    pub const fn code(self) -> &'static str {
        match self {
            SecurityLabel::Safeguarding => "safeguarding",
            SecurityLabel::SocialCare => "social-care",
            SecurityLabel::SexualHealth => "sexual-health",
            SecurityLabel::MentalHealth => "mental-health",
            SecurityLabel::Restricted => "restricted",
        }
    }

    pub fn from_code(code: &str) -> Option<SecurityLabel> {
        SecurityLabel::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The label a `meta.security` coding stands for, if any (see the module table).
    pub fn from_coding(system: &str, code: &str) -> Option<SecurityLabel> {
        match system {
            LABEL_SYSTEM => {
                Some(SecurityLabel::from_code(code).unwrap_or(SecurityLabel::Restricted))
            }
            V3_ACT_CODE => match code {
                "SDV" => Some(SecurityLabel::Safeguarding),
                "SEX" | "STD" | "HIV" => Some(SecurityLabel::SexualHealth),
                "PSY" | "MH" => Some(SecurityLabel::MentalHealth),
                _ => None,
            },
            V3_CONFIDENTIALITY => matches!(code, "R" | "V").then_some(SecurityLabel::Restricted),
            _ => None,
        }
    }

    /// All labels in a resource's `meta.security`.
    pub fn from_resource_meta(resource: &Value) -> LabelSet {
        let mut set = LabelSet::EMPTY;
        if let Some(codings) = resource.pointer("/meta/security").and_then(Value::as_array) {
            for c in codings {
                let system = c.get("system").and_then(Value::as_str).unwrap_or("");
                let code = c.get("code").and_then(Value::as_str).unwrap_or("");
                if let Some(l) = SecurityLabel::from_coding(system, code) {
                    set.insert(l);
                }
            }
        }
        set
    }

    /// The `meta.security` coding the passport writes for this label.
    pub fn coding(self) -> Value {
        json!({"system": LABEL_SYSTEM, "code": self.code()})
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of labels: what an item carries, or what a person is cleared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LabelSet(u8);

impl LabelSet {
    pub const EMPTY: LabelSet = LabelSet(0);
    pub const ALL: LabelSet = LabelSet((1 << SecurityLabel::ALL.len()) - 1);

    pub const fn of(labels: &[SecurityLabel]) -> LabelSet {
        let mut bits = 0;
        let mut i = 0;
        while i < labels.len() {
            bits |= labels[i].bit();
            i += 1;
        }
        LabelSet(bits)
    }
    pub const fn contains(self, l: SecurityLabel) -> bool {
        self.0 & l.bit() != 0
    }
    pub fn insert(&mut self, l: SecurityLabel) {
        self.0 |= l.bit();
    }
    /// The set as a bit mask (see [`crate::SectionSet::bits`]).
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// The set from [`LabelSet::bits`] (unknown bits dropped).
    pub const fn from_bits(bits: u8) -> LabelSet {
        LabelSet(bits & LabelSet::ALL.0)
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// True if every label in `self` is also in `cleared`.
    pub const fn within(self, cleared: LabelSet) -> bool {
        self.0 & !cleared.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = SecurityLabel> {
        SecurityLabel::ALL
            .into_iter()
            .filter(move |l| self.contains(*l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_our_and_hl7_codes() {
        let r = json!({"meta": {"security": [
            {"system": V3_ACT_CODE, "code": "SEX"},
            {"system": V3_CONFIDENTIALITY, "code": "N"},
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"},
            {"system": LABEL_SYSTEM, "code": "safeguarding"}
        ]}});
        assert_eq!(
            SecurityLabel::from_resource_meta(&r),
            LabelSet::of(&[SecurityLabel::SexualHealth, SecurityLabel::Safeguarding])
        );
        assert_eq!(
            SecurityLabel::from_coding(LABEL_SYSTEM, "future-label"),
            Some(SecurityLabel::Restricted)
        );
        assert_eq!(
            SecurityLabel::from_coding(V3_CONFIDENTIALITY, "V"),
            Some(SecurityLabel::Restricted)
        );
    }

    #[test]
    fn within() {
        let item = LabelSet::of(&[SecurityLabel::Safeguarding]);
        assert!(LabelSet::EMPTY.within(LabelSet::EMPTY));
        assert!(!item.within(LabelSet::EMPTY));
        assert!(item.within(LabelSet::of(&[
            SecurityLabel::Safeguarding,
            SecurityLabel::SocialCare
        ])));
    }
}

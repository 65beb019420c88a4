//! Passport sections, carried on every passport resource as a `meta.tag` coding in
//! [`SECTION_SYSTEM`]. Sharing and decisions read only that tag — never the resource
//! type, because one type serves several sections (an Observation can be "about me" or
//! "education"; a CarePlan can be "emergency" or "social care").

use serde_json::Value;

/// The code system of passport sections (`meta.tag[].system`).
pub const SECTION_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-section";

/// One section of a child's passport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    AboutMe,
    Communication,
    WhatMatters,
    Conditions,
    Allergies,
    Medicines,
    Equipment,
    Contacts,
    Emergency,
    Education,
    SocialCare,
}

impl Section {
    /// Every section, in passport order.
    pub const ALL: [Section; 11] = [
        Section::AboutMe,
        Section::Communication,
        Section::WhatMatters,
        Section::Conditions,
        Section::Allergies,
        Section::Medicines,
        Section::Equipment,
        Section::Contacts,
        Section::Emergency,
        Section::Education,
        Section::SocialCare,
    ];

    /// The code in [`SECTION_SYSTEM`].
    pub const fn code(self) -> &'static str {
        match self {
            Section::AboutMe => "about-me",
            Section::Communication => "communication",
            Section::WhatMatters => "what-matters",
            Section::Conditions => "conditions",
            Section::Allergies => "allergies",
            Section::Medicines => "medicines",
            Section::Equipment => "equipment",
            Section::Contacts => "contacts",
            Section::Emergency => "emergency",
            Section::Education => "education",
            Section::SocialCare => "social-care",
        }
    }

    /// A plain-English name for pages and reasons.
    pub const fn display(self) -> &'static str {
        match self {
            Section::AboutMe => "About me",
            Section::Communication => "Communication",
            Section::WhatMatters => "What matters to me",
            Section::Conditions => "Health conditions",
            Section::Allergies => "Allergies",
            Section::Medicines => "Medicines",
            Section::Equipment => "Equipment",
            Section::Contacts => "Contacts",
            Section::Emergency => "Emergency protocol",
            Section::Education => "Education",
            Section::SocialCare => "Social care",
        }
    }

    pub fn from_code(code: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.code() == code)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The sections a resource is tagged with: the `meta.tag` codings whose system is
    /// [`SECTION_SYSTEM`] and whose code is known. Takes the whole resource JSON. Codes
    /// this build does not know are ignored (so such a resource counts as untagged and
    /// gets the strictest treatment).
    pub fn from_resource_meta(resource: &Value) -> SectionSet {
        let mut set = SectionSet::EMPTY;
        if let Some(tags) = resource.pointer("/meta/tag").and_then(Value::as_array) {
            for tag in tags {
                if tag.get("system").and_then(Value::as_str) == Some(SECTION_SYSTEM)
                    && let Some(s) = tag
                        .get("code")
                        .and_then(Value::as_str)
                        .and_then(Section::from_code)
                {
                    set.insert(s);
                }
            }
        }
        set
    }

    /// The `meta.tag` coding for this section, to put on a resource.
    pub fn tag(self) -> Value {
        serde_json::json!({"system": SECTION_SYSTEM, "code": self.code(), "display": self.display()})
    }
}

/// A set of sections (a bit set: copying and testing it costs nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SectionSet(u16);

impl SectionSet {
    pub const EMPTY: SectionSet = SectionSet(0);
    pub const ALL: SectionSet = SectionSet((1 << Section::ALL.len()) - 1);

    pub const fn of(sections: &[Section]) -> SectionSet {
        let mut bits = 0;
        let mut i = 0;
        while i < sections.len() {
            bits |= sections[i].bit();
            i += 1;
        }
        SectionSet(bits)
    }
    pub const fn contains(self, s: Section) -> bool {
        self.0 & s.bit() != 0
    }
    pub fn insert(&mut self, s: Section) {
        self.0 |= s.bit();
    }
    pub fn remove(&mut self, s: Section) {
        self.0 &= !s.bit();
    }
    /// The set as a bit mask (bit `n` = the `n`th of [`Section::ALL`]): what the store
    /// keeps per resource so searches can apply the decision inside their queries.
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// The set from [`SectionSet::bits`] (unknown bits dropped).
    pub const fn from_bits(bits: u16) -> SectionSet {
        SectionSet(bits & SectionSet::ALL.0)
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn union(self, other: SectionSet) -> SectionSet {
        SectionSet(self.0 | other.0)
    }
    pub const fn intersection(self, other: SectionSet) -> SectionSet {
        SectionSet(self.0 & other.0)
    }
    pub const fn minus(self, other: SectionSet) -> SectionSet {
        SectionSet(self.0 & !other.0)
    }
    pub const fn intersects(self, other: SectionSet) -> bool {
        self.0 & other.0 != 0
    }
    pub fn iter(self) -> impl Iterator<Item = Section> {
        Section::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Section> for SectionSet {
    fn from_iter<I: IntoIterator<Item = Section>>(iter: I) -> Self {
        let mut set = SectionSet::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_only_the_section_system() {
        let r = json!({"resourceType": "CarePlan", "meta": {"tag": [
            {"system": SECTION_SYSTEM, "code": "emergency"},
            {"system": "http://example.org/other", "code": "medicines"},
            {"system": SECTION_SYSTEM, "code": "no-such-section"},
            {"code": "conditions"}
        ]}});
        assert_eq!(
            Section::from_resource_meta(&r),
            SectionSet::of(&[Section::Emergency])
        );
        assert!(Section::from_resource_meta(&json!({"resourceType": "Condition"})).is_empty());
    }

    #[test]
    fn codes_round_trip_and_sets_behave() {
        for s in Section::ALL {
            assert_eq!(Section::from_code(s.code()), Some(s));
            assert!(SectionSet::ALL.contains(s));
        }
        let set = SectionSet::of(&[Section::AboutMe, Section::Education]);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [Section::AboutMe, Section::Education]
        );
        assert_eq!(SectionSet::ALL.minus(set).iter().count(), 9);
    }
}

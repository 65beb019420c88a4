//! Synthetic, entirely fictitious children's passport records for load testing.
//!
//! Everything here is made up: names come from a small invented list, NHS numbers are drawn
//! from the 999 range (never issued to real people) with a valid modulus-11 check digit,
//! telephone numbers from Ofcom's drama range (07700 900xxx). Output is deterministic given
//! the seed, the patient index and the reference date ("today"), so two runs with the same
//! seed on the same day post byte-identical bodies.
//!
//! Clinical codes: every SNOMED CT and dm+d code below is taken from
//! `testdata/clinical/terminology.csv` (see its README for the sources of each row).
//! Medicines that README lists as *not confirmed* in dm+d (e.g. buccal midazolam) are sent as
//! `CodeableConcept.text` only, as the README asks. The one LOINC code (29463-7, body weight)
//! is the code fixed by the FHIR R4 vital-signs body-weight profile, not from that file.
//! No doses are generated: the app never supplies a dose.

use serde_json::{Value, json};

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const DMD: &str = "https://dmd.nhs.uk";
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
/// Passport's section code system (`meta.tag`): what part of the passport a resource is in
/// (docs/DATA-MODEL.md); the access decision shows each caller only some sections.
pub const SECTION_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/passport-section";
/// RelatedPerson extension (valueBoolean): the adult has parental responsibility.
pub const PARENTAL_RESPONSIBILITY: &str =
    "https://passport.nhs.uk/fhir/StructureDefinition/parental-responsibility";
/// Schools in the synthetic region by default: each child is at one of them (child index
/// modulo the number of schools), so a school relates to 1/20 of the children.
pub const DEFAULT_SCHOOLS: u64 = 20;

/// The resource types the generator makes.
pub const TYPES: &[&str] = &[
    "Patient",
    "RelatedPerson",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "Observation",
    "CarePlan",
    "CareTeam",
];

/// The section each generated type is tagged with (`meta.tag` in [`SECTION_SYSTEM`]). With
/// the regional policy's sector defaults, a hospital or GP (health) sees every one of them,
/// a school `about-me`, `emergency`, `education`, `allergies` and `medicines` (the Patient, the body weights,
/// the emergency plan, allergies and medicines, not conditions or contacts); a parent with
/// parental responsibility sees all.
pub fn sections_of(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Patient" => &["about-me"],
        "RelatedPerson" | "CareTeam" => &["contacts"],
        "Condition" => &["conditions"],
        "AllergyIntolerance" => &["allergies"],
        "MedicationStatement" => &["medicines"],
        "Observation" => &["about-me"],
        "CarePlan" => &["emergency", "education"],
        _ => &[],
    }
}

/// The review state of a family member's version (the passport's `meta.tag`): an item
/// "patient-reported, awaiting review", for the review page's workload.
pub const REVIEW_SYSTEM: &str = "https://passport.nhs.uk/fhir/CodeSystem/review-status";

/// `resource` with its type's section tags ([`sections_of`]) in `meta.tag`, and the
/// awaiting-review tag on an unconfirmed allergy (as the family's additions are).
fn tagged(mut resource: Value) -> Value {
    let ty = resource["resourceType"].as_str().unwrap_or("").to_owned();
    let mut tags: Vec<Value> = sections_of(&ty)
        .iter()
        .map(|code| json!({ "system": SECTION_SYSTEM, "code": code }))
        .collect();
    if resource["verificationStatus"]["coding"][0]["code"] == "unconfirmed" {
        tags.push(json!({ "system": REVIEW_SYSTEM, "code": "awaiting-review" }));
    }
    if !tags.is_empty() {
        resource["meta"] = json!({ "tag": tags });
    }
    resource
}

/// The synthetic region's organisations (ids of the `Organization`s made with `passport
/// admin create-org`): every child's `CareTeam` names the hospital trust, the GP practice
/// and the child's school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub hospital: String,
    pub gp: String,
    pub schools: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Deterministic pseudo-random numbers (SplitMix64): tiny, fast, good enough for test data.

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator for one (seed, a, b) stream, independent of the others.
    pub fn derive(seed: u64, a: u64, b: u64) -> Self {
        let mut r = Rng(seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let x = r.next_u64() ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng(x)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------
// NHS numbers

/// The modulus-11 check digit of the first nine digits, or `None` when the result is 10
/// (such a nine-digit stem is never issued).
pub fn nhs_check_digit(stem: &[u8; 9]) -> Option<u8> {
    let sum: u32 = stem
        .iter()
        .zip((2..=10).rev())
        .map(|(&d, w)| d as u32 * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

/// True when `s` is ten digits with a valid modulus-11 check digit.
pub fn is_valid_nhs_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut stem = [0u8; 9];
    for (i, d) in stem.iter_mut().enumerate() {
        *d = b[i] - b'0';
    }
    nhs_check_digit(&stem) == Some(b[9] - b'0')
}

/// Patients that get distinct NHS numbers (100,000 eight-digit stems × 9 ninth digits).
pub const DISTINCT_NHS_NUMBERS: u64 = 900_000;

/// A fictitious NHS number (999 range) for patient `index`: distinct for distinct indexes
/// below [`DISTINCT_NHS_NUMBERS`], scrambled by the seed.
pub fn nhs_number(seed: u64, index: u64) -> String {
    let index = index % DISTINCT_NHS_NUMBERS;
    let (stem_no, which) = (index / 9, index % 9);
    // A bijection on 0..100_000 (multiplier coprime to 10), offset by the seed.
    let scrambled = (stem_no * 7_919 + seed % 100_000) % 100_000;
    let mut stem = [9u8, 9, 9, 0, 0, 0, 0, 0, 0];
    let mut x = scrambled;
    for i in (3..8).rev() {
        stem[i] = (x % 10) as u8;
        x /= 10;
    }
    // Of the ten possible ninth digits at most one gives check value 10 (the ninth digit's
    // weight, 2, is invertible mod 11), so at least nine are valid: take the `which`-th.
    let mut seen = 0;
    for d in 0..10u8 {
        stem[8] = d;
        if let Some(check) = nhs_check_digit(&stem) {
            if seen == which {
                let mut s: String = stem.iter().map(|d| (b'0' + d) as char).collect();
                s.push((b'0' + check) as char);
                debug_assert!(is_valid_nhs_number(&s));
                return s;
            }
            seen += 1;
        }
    }
    unreachable!("at least nine valid ninth digits")
}

// ---------------------------------------------------------------------------------------
// Dates (proleptic Gregorian, days since 1970-01-01)

pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn date_string(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since the epoch of the current UTC date.
pub fn today_days() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

// ---------------------------------------------------------------------------------------
// Vocabulary (made-up names; codes from testdata/clinical/terminology.csv)

const GIVEN_FEMALE: &[&str] = &[
    "Amelie", "Brynna", "Calla", "Delphine", "Elowen", "Fern", "Isla", "Juniper", "Maren", "Nell",
];
const GIVEN_MALE: &[&str] = &[
    "Arlo", "Bram", "Caspian", "Dorian", "Ewan", "Finch", "Hollis", "Jory", "Lorcan", "Tobin",
];
const FAMILY: &[&str] = &[
    "Ashcombe",
    "Brindleford",
    "Corrowby",
    "Dunhallow",
    "Eldermere",
    "Fallowtree",
    "Greyhithe",
    "Harrowden",
    "Kestlemoor",
    "Larkspurne",
    "Marrowby",
    "Nettlecombe",
    "Quillerton",
    "Rookwell",
    "Thistlegate",
    "Wyndlow",
];
const PARENT_FEMALE: &[&str] = &["Annis", "Beatrix", "Carys", "Dilys", "Esme", "Marnie"];
const PARENT_MALE: &[&str] = &["Alaric", "Bede", "Cormac", "Emrys", "Lowen", "Silas"];

/// A coded concept: (code, display).
type Code = (&'static str, &'static str);

/// A medicine: dm+d coding when confirmed in terminology.csv, otherwise text only.
#[derive(Clone, Copy)]
enum Med {
    Dmd(Code),
    Text(&'static str),
}

struct ConditionGroup {
    codes: &'static [Code],
    meds: &'static [Med],
    plan_title: &'static str,
}

// SNOMED CT condition codes and dm+d medicine codes: testdata/clinical/terminology.csv.
const GROUPS: &[ConditionGroup] = &[
    ConditionGroup {
        codes: &[
            ("84757009", "Epilepsy"),
            ("44145005", "Benign Rolandic epilepsy"),
            ("15523002", "Benign focal epilepsy of childhood"),
            ("6204001", "Juvenile myoclonic epilepsy"),
        ],
        // Not confirmed in dm+d per the README: text only.
        meds: &[Med::Text(
            "Buccal midazolam (rescue medicine; dm+d code not confirmed)",
        )],
        plan_title: "Seizure emergency plan",
    },
    ConditionGroup {
        codes: &[
            ("233678006", "Childhood asthma"),
            ("195967001", "Asthma"),
            ("389145006", "Allergic asthma"),
        ],
        meds: &[
            Med::Dmd((
                "39113611000001102",
                "Salbutamol 100micrograms/dose inhaler CFC free",
            )),
            Med::Dmd((
                "35909611000001106",
                "Beclometasone 50micrograms/dose inhaler CFC free",
            )),
        ],
        plan_title: "Asthma emergency plan",
    },
    ConditionGroup {
        codes: &[("46635009", "Diabetes mellitus type 1")],
        meds: &[
            Med::Dmd((
                "3468711000001104",
                "Insulin aspart 100units/ml solution for injection 3ml pre-filled disposable devices",
            )),
            Med::Dmd((
                "38897011000001107",
                "Insulin glargine 100units/ml solution for injection 3ml pre-filled disposable devices",
            )),
        ],
        plan_title: "Hypoglycaemia emergency plan",
    },
    ConditionGroup {
        codes: &[("128188000", "Cerebral palsy")],
        meds: &[],
        plan_title: "Complex needs emergency plan",
    },
    ConditionGroup {
        codes: &[
            ("408856003", "Autistic disorder"),
            ("43614003", "Autistic disorder of childhood onset"),
        ],
        meds: &[],
        plan_title: "Communication and distress plan",
    },
    ConditionGroup {
        codes: &[("406506008", "Attention deficit hyperactivity disorder")],
        meds: &[],
        plan_title: "Care plan",
    },
];

struct Allergen {
    substance: Code,
    category: &'static str,
    anaphylaxis: bool,
}

// SNOMED CT substance codes: testdata/clinical/terminology.csv.
const ALLERGENS: &[Allergen] = &[
    Allergen {
        substance: ("762952008", "Peanut"),
        category: "food",
        anaphylaxis: true,
    },
    Allergen {
        substance: ("102263004", "Eggs (edible)"),
        category: "food",
        anaphylaxis: false,
    },
    Allergen {
        substance: ("3718001", "Cow's milk"),
        category: "food",
        anaphylaxis: false,
    },
    Allergen {
        substance: ("764146007", "Substance with penicillin structure"),
        category: "medication",
        anaphylaxis: false,
    },
];
/// SNOMED CT "Anaphylaxis" (terminology.csv), used as a reaction manifestation.
const ANAPHYLAXIS: Code = ("39579001", "Anaphylaxis");
/// dm+d VTM "Adrenaline" (terminology.csv).
const ADRENALINE: Code = ("65502005", "Adrenaline");

// ---------------------------------------------------------------------------------------
// The generator

/// Everything about one synthetic child, decided up front from its own random stream.
struct Child {
    nhs: String,
    given: &'static str,
    family: &'static str,
    gender: &'static str,
    birth_days: i64,
    parent_given: &'static str,
    parent_rel: (&'static str, &'static str),
    parent_phone: String,
    groups: Vec<usize>,
    condition_codes: Vec<Code>,
    allergens: Vec<usize>,
    weight_kg_tenths: u64,
    weighed_days: i64,
}

/// Resources (the Patient included) of a "complex" child: a long growth history (extra
/// body-weight Observations) pads its record to this, so `$everything` returns ~30.
pub const COMPLEX_CHILD_RESOURCES: usize = 30;

/// Default share of complex children, in percent.
pub const DEFAULT_COMPLEX_PERCENT: u64 = 10;

#[derive(Debug, Clone)]
pub struct Synth {
    seed: u64,
    today: i64,
    complex_percent: u64,
    schools: u64,
    /// The organisations the care teams name (placeholder ids until [`Synth::with_region`]).
    region: Option<std::sync::Arc<Region>>,
}

impl Synth {
    /// `today`: the reference date, in days since 1970-01-01 (birth dates fall in the 18
    /// years before it).
    pub fn new(seed: u64, today: i64) -> Self {
        Synth {
            seed,
            today,
            complex_percent: DEFAULT_COMPLEX_PERCENT,
            schools: DEFAULT_SCHOOLS,
            region: None,
        }
    }

    /// Sets the number of schools (at least 1); child `i` is at school `i % schools`.
    pub fn with_schools(mut self, schools: u64) -> Self {
        self.schools = schools.max(1);
        self
    }

    /// Sets the organisations the care teams name (`region.schools` must have
    /// [`Synth::schools`] entries).
    pub fn with_region(mut self, region: Region) -> Self {
        assert_eq!(
            region.schools.len() as u64,
            self.schools,
            "one id per school"
        );
        self.region = Some(std::sync::Arc::new(region));
        self
    }

    pub fn schools(&self) -> u64 {
        self.schools
    }

    /// The school (`0..schools`) child `index` is at.
    pub fn school_of(&self, index: u64) -> u64 {
        index % self.schools
    }

    /// Child `index`'s age in days on the reference date.
    pub fn age_days(&self, index: u64) -> i64 {
        self.today - self.child(index).birth_days
    }

    /// Child `index`'s CareTeam: active, naming the hospital trust, the GP practice and
    /// the child's school (`Organization` members: everyone working there).
    fn care_team(&self, index: u64, patient_ref: &str) -> Value {
        let school = self.school_of(index);
        let (hospital, gp, school) = match &self.region {
            Some(r) => (
                r.hospital.clone(),
                r.gp.clone(),
                r.schools[school as usize].clone(),
            ),
            None => (
                "bench-hospital".to_owned(),
                "bench-gp".to_owned(),
                format!("bench-school-{school}"),
            ),
        };
        let member = |id: &str| json!({ "member": { "reference": format!("Organization/{id}") } });
        tagged(json!({
            "resourceType": "CareTeam",
            "status": "active",
            "name": "Care team",
            "subject": { "reference": patient_ref },
            "participant": [member(&hospital), member(&gp), member(&school)],
        }))
    }

    /// Sets the share (0–100 %) of complex children.
    pub fn with_complex_percent(mut self, percent: u64) -> Self {
        self.complex_percent = percent.min(100);
        self
    }

    /// True when child `index` is a complex one ([`COMPLEX_CHILD_RESOURCES`] resources).
    pub fn is_complex(&self, index: u64) -> bool {
        Rng::derive(self.seed, index, 1).below(100) < self.complex_percent
    }

    /// The NHS number of child `index`.
    pub fn nhs(&self, index: u64) -> String {
        nhs_number(self.seed, index)
    }

    /// How many resources (Patient included) child `index` has: `1 + dependents().len()`,
    /// without building them.
    pub fn resource_count(&self, index: u64) -> usize {
        let c = self.child(index);
        let meds: usize = c
            .groups
            .iter()
            .map(|&g| GROUPS[g].meds.len())
            .sum::<usize>()
            + c.allergens
                .iter()
                .filter(|&&a| ALLERGENS[a].anaphylaxis)
                .count();
        // Patient, RelatedPerson, conditions, allergies, medicines, weight, care plan,
        // care team.
        let base = 1 + 1 + c.condition_codes.len() + c.allergens.len() + meds + 1 + 1 + 1;
        if self.is_complex(index) {
            base.max(COMPLEX_CHILD_RESOURCES)
        } else {
            base
        }
    }

    /// The number of children (from index 0) whose records add up to at least `resources`.
    pub fn children_for_resources(&self, resources: u64) -> u64 {
        let (mut children, mut sum) = (0u64, 0u64);
        while sum < resources {
            sum += self.resource_count(children) as u64;
            children += 1;
        }
        children
    }

    /// Splits children `0..children` into consecutive runs whose records hold at most
    /// `bundle_size` resources each (a child is never split: its resources refer to its
    /// Patient by `urn:uuid`; a child bigger than `bundle_size` gets a bundle of its own).
    pub fn plan_bundles(&self, children: u64, bundle_size: usize) -> Vec<std::ops::Range<u64>> {
        let mut out = Vec::new();
        let (mut start, mut size) = (0u64, 0usize);
        for i in 0..children {
            let n = self.resource_count(i);
            if size > 0 && size + n > bundle_size {
                out.push(start..i);
                (start, size) = (i, 0);
            }
            size += n;
        }
        if size > 0 {
            out.push(start..children);
        }
        out
    }

    /// A `transaction` Bundle creating the children `children`: each Patient gets a
    /// `fullUrl` `urn:uuid:…` (random v4 UUIDs from `rng`) and its other resources refer to
    /// it by that urn. All entries are `POST {type}`.
    pub fn transaction(&self, children: std::ops::Range<u64>, rng: &mut Rng) -> Value {
        let mut entries = Vec::new();
        for index in children {
            let deps = |r: &str| self.dependents(index, r);
            push_child(&mut entries, self.patient(index), deps, rng);
        }
        transaction_bundle(entries)
    }

    /// A `transaction` Bundle of exactly `entries` entries for one new child `index`: its
    /// Patient (`fullUrl` `urn:uuid:…`) and `entries - 1` resources referring to it by that
    /// urn (its usual record, cut or padded with growth-history weights).
    pub fn transaction_child(&self, index: u64, entries: usize, rng: &mut Rng) -> Value {
        let mut out = Vec::with_capacity(entries);
        let n = entries.saturating_sub(1);
        let deps = |r: &str| self.dependents_exactly(index, r, n);
        push_child(&mut out, self.patient(index), deps, rng);
        out.truncate(entries);
        transaction_bundle(out)
    }

    /// Child `index`'s dependents, cut or padded (growth-history weights) to exactly `n`.
    pub fn dependents_exactly(&self, index: u64, patient_ref: &str, n: usize) -> Vec<Value> {
        let mut out = self.dependents_base(index, patient_ref);
        out.truncate(n);
        let missing = n - out.len();
        out.extend(self.growth_history(index, patient_ref, missing));
        out
    }

    /// `n` earlier body weights of child `index`, spread between birth and its last weight.
    fn growth_history(&self, index: u64, patient_ref: &str, n: usize) -> Vec<Value> {
        let c = self.child(index);
        let span = (c.weighed_days - c.birth_days).max(1);
        let last = c.weight_kg_tenths as i64;
        (1..=n as i64)
            .map(|k| {
                // k-th of n points before the last weight, oldest last; never before birth.
                let day = c.weighed_days - span * k / (n as i64 + 1);
                let grown = (day - c.birth_days) * 1_000 / span; // per mille of the way
                let tenths = (35 + (last - 35) * grown / 1_000).max(20);
                tagged(weight(patient_ref, day, tenths as u64))
            })
            .collect()
    }

    fn child(&self, index: u64) -> Child {
        let mut r = Rng::derive(self.seed, index, 0);
        let gender = match r.below(100) {
            0..=48 => "female",
            49..=97 => "male",
            98 => "other",
            _ => "unknown",
        };
        let given = if gender == "female" || (gender != "male" && r.percent(50)) {
            r.pick(GIVEN_FEMALE)
        } else {
            r.pick(GIVEN_MALE)
        };
        let family = r.pick(FAMILY);
        // Born 0..18 years before `today` (never today itself or in the future).
        let age_days = 1 + r.below(18 * 365) as i64;
        let birth_days = self.today - age_days;
        let (parent_given, parent_rel) = match r.below(10) {
            0..=5 => (*r.pick(PARENT_FEMALE), ("MTH", "mother")),
            6..=8 => (*r.pick(PARENT_MALE), ("FTH", "father")),
            _ => (*r.pick(PARENT_FEMALE), ("PRN", "parent")),
        };
        let parent_phone = format!("07700 900{:03}", r.below(1000));
        let mut groups = vec![r.below(GROUPS.len() as u64) as usize];
        if r.percent(30) {
            let g = r.below(GROUPS.len() as u64) as usize;
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let condition_codes = groups.iter().map(|&g| *r.pick(GROUPS[g].codes)).collect();
        let mut allergens = Vec::new();
        for _ in 0..2 {
            if r.percent(25) {
                let a = r.below(ALLERGENS.len() as u64) as usize;
                if !allergens.contains(&a) {
                    allergens.push(a);
                }
            }
        }
        // Rough growth curve: ~3.5 kg at birth, ~2.5 kg/year, ±15 %.
        let age_years_x10 = age_days as u64 * 10 / 365;
        let base = 35 + age_years_x10 * 25 / 10;
        let jitter = 85 + r.below(31); // 85..=115 %
        let weight_kg_tenths = (base * jitter / 100).max(20);
        let weighed_days = self.today - r.below(age_days.min(365) as u64) as i64;
        Child {
            nhs: nhs_number(self.seed, index),
            given,
            family,
            gender,
            birth_days,
            parent_given,
            parent_rel,
            parent_phone,
            groups,
            condition_codes,
            allergens,
            weight_kg_tenths,
            weighed_days,
        }
    }

    /// The Patient resource of child `index`.
    pub fn patient(&self, index: u64) -> Value {
        let c = self.child(index);
        tagged(json!({
            "resourceType": "Patient",
            "identifier": [{ "system": NHS_NUMBER_SYSTEM, "value": c.nhs }],
            "active": true,
            "name": [{ "use": "official", "family": c.family, "given": [c.given] }],
            "gender": c.gender,
            "birthDate": date_string(c.birth_days),
        }))
    }

    /// The other resources of child `index`, each referring to `patient_ref`
    /// (`Patient/{id}`): a parent, conditions, allergies, medicines, a weight and an
    /// emergency care plan (about 7–9 resources).
    /// A complex child ([`Synth::is_complex`]) also has a growth history: earlier weights up
    /// to [`COMPLEX_CHILD_RESOURCES`] resources in all.
    pub fn dependents(&self, index: u64, patient_ref: &str) -> Vec<Value> {
        let mut out = self.dependents_base(index, patient_ref);
        if self.is_complex(index) && out.len() + 1 < COMPLEX_CHILD_RESOURCES {
            let missing = COMPLEX_CHILD_RESOURCES - 1 - out.len();
            out.extend(self.growth_history(index, patient_ref, missing));
        }
        out
    }

    fn dependents_base(&self, index: u64, patient_ref: &str) -> Vec<Value> {
        let c = self.child(index);
        let subject = json!({ "reference": patient_ref });
        let mut out = Vec::with_capacity(9);
        out.push(json!({
            "resourceType": "RelatedPerson",
            "extension": [{ "url": PARENTAL_RESPONSIBILITY, "valueBoolean": true }],
            "patient": subject,
            "active": true,
            "relationship": [{ "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                "code": c.parent_rel.0,
                "display": c.parent_rel.1,
            }]}],
            "name": [{ "family": c.family, "given": [c.parent_given] }],
            "telecom": [{ "system": "phone", "value": c.parent_phone, "use": "mobile" }],
        }));
        for code in &c.condition_codes {
            out.push(condition(
                &subject,
                *code,
                date_string(c.birth_days + (self.today - c.birth_days) / 3),
            ));
        }
        let mut meds: Vec<Med> = c
            .groups
            .iter()
            .flat_map(|&g| GROUPS[g].meds.iter().copied())
            .collect();
        for &a in &c.allergens {
            let al = &ALLERGENS[a];
            // Allergens of even index were added by the family and wait for review.
            let verification = if a % 2 == 0 {
                "unconfirmed"
            } else {
                "confirmed"
            };
            let mut ai = json!({
                "resourceType": "AllergyIntolerance",
                "clinicalStatus": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }]},
                "verificationStatus": { "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "code": verification,
                }]},
                "type": "allergy",
                "category": [al.category],
                "criticality": if al.anaphylaxis { "high" } else { "low" },
                "code": { "coding": [{ "system": SNOMED, "code": al.substance.0, "display": al.substance.1 }] },
                "patient": subject,
            });
            if al.anaphylaxis {
                ai["reaction"] = json!([{
                    "manifestation": [{ "coding": [{ "system": SNOMED, "code": ANAPHYLAXIS.0, "display": ANAPHYLAXIS.1 }] }],
                    "severity": "severe",
                }]);
                meds.push(Med::Dmd(ADRENALINE));
            }
            out.push(ai);
        }
        for m in meds {
            let medication = match m {
                Med::Dmd((code, display)) => {
                    json!({ "coding": [{ "system": DMD, "code": code, "display": display }] })
                }
                Med::Text(text) => json!({ "text": text }),
            };
            out.push(json!({
                "resourceType": "MedicationStatement",
                "status": "active",
                "medicationCodeableConcept": medication,
                "subject": subject,
                "dateAsserted": date_string(self.today - 30),
            }));
        }
        out.push(weight(patient_ref, c.weighed_days, c.weight_kg_tenths));
        out.push(care_plan(
            &subject,
            GROUPS[c.groups[0]].plan_title,
            date_string(self.today - 60),
        ));
        out.push(self.care_team(index, patient_ref));
        out.into_iter().map(tagged).collect()
    }

    /// One resource of a type chosen by `pick` (any of [`TYPES`]), for creates in the
    /// mixed workload: a Patient for child `index`, or another child-`index` resource
    /// referring to `patient_ref`.
    pub fn any_resource(&self, index: u64, pick: u64, patient_ref: &str) -> Value {
        if pick.is_multiple_of(4) {
            return self.patient(index);
        }
        // Not a CareTeam: a new one would add a relationship to an already loaded child.
        let deps: Vec<Value> = self
            .dependents(index, patient_ref)
            .into_iter()
            .filter(|r| r["resourceType"] != "CareTeam")
            .collect();
        deps[(pick / 4) as usize % deps.len()].clone()
    }
}

/// A body-weight Observation (LOINC 29463-7, UCUM kg) of `tenths` × 0.1 kg on `day`.
fn weight(patient_ref: &str, day: i64, tenths: u64) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
        }]}],
        "code": { "coding": [{ "system": LOINC, "code": "29463-7", "display": "Body weight" }] },
        "subject": { "reference": patient_ref },
        "effectiveDateTime": date_string(day),
        "valueQuantity": {
            "value": tenths as f64 / 10.0,
            "unit": "kg",
            "system": UCUM,
            "code": "kg",
        },
    })
}

/// A random (version 4) UUID as `urn:uuid:…`.
pub fn urn_uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    let a = (a & !0xF000) | 0x4000; // version 4 in bits 12..16 of the third group
    let b = (b & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    format!(
        "urn:uuid:{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xFFFF,
        a & 0xFFFF,
        b >> 48,
        b & 0xFFFF_FFFF_FFFF
    )
}

fn post_entry(full_url: String, resource: Value) -> Value {
    let ty = resource["resourceType"]
        .as_str()
        .unwrap_or("Unknown")
        .to_owned();
    json!({
        "fullUrl": full_url,
        "resource": resource,
        "request": { "method": "POST", "url": ty },
    })
}

/// Appends a child's Patient (under a fresh urn:uuid) and its dependents (built by `deps`
/// from that urn) as POST entries.
fn push_child(
    entries: &mut Vec<Value>,
    patient: Value,
    deps: impl FnOnce(&str) -> Vec<Value>,
    rng: &mut Rng,
) {
    let urn = urn_uuid(rng);
    let dependents = deps(&urn);
    entries.push(post_entry(urn, patient));
    for d in dependents {
        entries.push(post_entry(urn_uuid(rng), d));
    }
}

fn transaction_bundle(entries: Vec<Value>) -> Value {
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}

fn condition(subject: &Value, code: Code, onset: String) -> Value {
    json!({
        "resourceType": "Condition",
        "clinicalStatus": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active",
        }]},
        "verificationStatus": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "confirmed",
        }]},
        "category": [{ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
            "code": "problem-list-item",
        }]}],
        "code": { "coding": [{ "system": SNOMED, "code": code.0, "display": code.1 }] },
        "subject": subject,
        "onsetDateTime": onset,
    })
}

fn care_plan(subject: &Value, title: &str, start: String) -> Value {
    json!({
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "title": title,
        "description": "Synthetic test record: follow the child's own clinician-signed emergency plan.",
        "subject": subject,
        "period": { "start": start },
        "activity": [{ "detail": {
            "status": "not-started",
            "description": "In an emergency follow the steps in the child's signed plan; call 999 when it says to.",
        }}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: i64 = 20_000; // 2024-10-04

    #[test]
    fn check_digit_known_examples() {
        // 4,0,1,0,2,3,2,1,3 × 10..2 = 40+0+8+0+12+15+8+3+6 = 92; 92 mod 11 = 4; 11-4 = 7.
        assert!(is_valid_nhs_number("4010232137"));
        assert!(!is_valid_nhs_number("4010232136"));
        assert!(!is_valid_nhs_number("401023213"));
        assert!(!is_valid_nhs_number("40102321x7"));
        // Sum 0 → 11 → check digit 0.
        assert_eq!(nhs_check_digit(&[0; 9]), Some(0));
        // 6 × 2 = 12; 12 mod 11 = 1; 11-1 = 10 → never issued.
        assert_eq!(nhs_check_digit(&[0, 0, 0, 0, 0, 0, 0, 0, 6]), None);
    }

    #[test]
    fn generated_nhs_numbers_are_valid_distinct_and_in_999_range() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..50_000 {
            let n = nhs_number(7, i);
            assert!(n.starts_with("999"), "{n}");
            assert!(is_valid_nhs_number(&n), "{n}");
            assert!(seen.insert(n), "duplicate at {i}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(date_string(0), "1970-01-01");
        assert_eq!(date_string(TODAY), "2024-10-04");
        assert_eq!(date_string(11_016), "2000-02-29");
        assert_eq!(date_string(-1), "1969-12-31");
    }

    #[test]
    fn deterministic_given_seed() {
        let a = Synth::new(1, TODAY);
        let b = Synth::new(1, TODAY);
        let c = Synth::new(2, TODAY);
        for i in 0..100 {
            assert_eq!(a.patient(i), b.patient(i));
            assert_eq!(a.dependents(i, "Patient/x"), b.dependents(i, "Patient/x"));
        }
        assert!((0..100).any(|i| a.patient(i) != c.patient(i)));
    }

    #[test]
    fn resources_have_required_elements() {
        let s = Synth::new(42, TODAY);
        let mut types = std::collections::HashSet::new();
        for i in 0..500 {
            let p = s.patient(i);
            assert_eq!(p["resourceType"], "Patient");
            assert_eq!(p["identifier"][0]["system"], NHS_NUMBER_SYSTEM);
            assert!(is_valid_nhs_number(
                p["identifier"][0]["value"].as_str().unwrap()
            ));
            let birth = p["birthDate"].as_str().unwrap().to_owned();
            assert!(
                birth < date_string(TODAY) && birth >= date_string(TODAY - 18 * 366),
                "{birth}"
            );
            types.insert("Patient".to_owned());
            for r in s.dependents(i, "Patient/p1") {
                let t = r["resourceType"].as_str().unwrap();
                types.insert(t.to_owned());
                let subject = match t {
                    "RelatedPerson" | "AllergyIntolerance" => &r["patient"],
                    _ => &r["subject"],
                };
                assert_eq!(subject["reference"], "Patient/p1", "{t}");
                match t {
                    "Condition" => assert!(r["code"]["coding"][0]["code"].is_string()),
                    "Observation" => {
                        assert_eq!(r["status"], "final");
                        assert_eq!(r["code"]["coding"][0]["code"], "29463-7");
                        assert_eq!(r["valueQuantity"]["system"], UCUM);
                        assert!(r["valueQuantity"]["value"].as_f64().unwrap() >= 2.0);
                    }
                    "MedicationStatement" => {
                        assert_eq!(r["status"], "active");
                        assert!(r["medicationCodeableConcept"].is_object());
                    }
                    "CarePlan" => {
                        assert_eq!(r["status"], "active");
                        assert_eq!(r["intent"], "plan");
                    }
                    "CareTeam" => {
                        assert_eq!(r["status"], "active");
                        let members: Vec<&str> = r["participant"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| p["member"]["reference"].as_str().unwrap())
                            .collect();
                        assert_eq!(
                            members,
                            [
                                "Organization/bench-hospital".to_owned(),
                                "Organization/bench-gp".to_owned(),
                                format!("Organization/bench-school-{}", i % DEFAULT_SCHOOLS)
                            ]
                        );
                    }
                    "RelatedPerson" => {
                        assert_eq!(r["extension"][0]["url"], PARENTAL_RESPONSIBILITY);
                        assert_eq!(r["extension"][0]["valueBoolean"], true);
                    }
                    "AllergyIntolerance" => {}
                    other => panic!("unexpected type {other}"),
                }
                // Every resource carries its type's section tags; an unconfirmed allergy
                // also waits for review.
                let tags: Vec<&str> = r["meta"]["tag"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|t| t["system"] == SECTION_SYSTEM)
                    .map(|t| t["code"].as_str().unwrap())
                    .collect();
                assert_eq!(tags, sections_of(t), "{t}");
                let waiting = r["meta"]["tag"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["system"] == REVIEW_SYSTEM && t["code"] == "awaiting-review");
                assert_eq!(
                    waiting,
                    r["verificationStatus"]["coding"][0]["code"] == "unconfirmed",
                    "{r}"
                );
            }
            assert_eq!(p["meta"]["tag"][0]["code"], "about-me");
        }
        assert_eq!(types.len(), TYPES.len(), "{types:?}");
    }

    #[test]
    fn resource_count_matches_generated_records() {
        let s = Synth::new(42, TODAY);
        let mut complex = 0;
        for i in 0..2_000 {
            let n = s.dependents(i, "Patient/p").len() + 1;
            assert_eq!(s.resource_count(i), n, "child {i}");
            if s.is_complex(i) {
                complex += 1;
                assert_eq!(n, COMPLEX_CHILD_RESOURCES, "child {i}");
            } else {
                assert!((6..=14).contains(&n), "child {i}: {n}");
            }
        }
        assert!((120..280).contains(&complex), "{complex} complex of 2000");
        let none = Synth::new(42, TODAY).with_complex_percent(0);
        assert!((0..500).all(|i| !none.is_complex(i)));
        // Growth histories: weights in the past, after birth, growing.
        let i = (0..2_000).find(|&i| s.is_complex(i)).unwrap();
        let birth = s.patient(i)["birthDate"].as_str().unwrap().to_owned();
        for r in s.dependents(i, "Patient/p") {
            if r["resourceType"] == "Observation" {
                let d = r["effectiveDateTime"].as_str().unwrap();
                assert!(
                    d >= birth.as_str() && d <= date_string(TODAY).as_str(),
                    "{d}"
                );
                assert!(r["valueQuantity"]["value"].as_f64().unwrap() >= 2.0);
            }
        }
    }

    #[test]
    fn resources_target_and_bundle_plan() {
        let s = Synth::new(7, TODAY);
        let k = s.children_for_resources(10_000);
        let total = |n: u64| (0..n).map(|i| s.resource_count(i) as u64).sum::<u64>();
        assert!(total(k) >= 10_000 && total(k - 1) < 10_000, "{k}");
        assert_eq!(s.children_for_resources(0), 0);
        for size in [1, 20, 100, 250] {
            let plan = s.plan_bundles(k, size);
            let mut next = 0;
            for r in &plan {
                assert_eq!(r.start, next);
                assert!(r.end > r.start);
                let n: usize = r.clone().map(|i| s.resource_count(i)).sum();
                assert!(n <= size || r.end - r.start == 1, "{r:?}: {n} > {size}");
                next = r.end;
            }
            assert_eq!(next, k);
        }
        assert!(s.plan_bundles(0, 100).is_empty());
    }

    fn check_transaction(b: &Value, children: usize) -> Vec<Value> {
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "transaction");
        let entries = b["entry"].as_array().unwrap();
        let mut urls = std::collections::HashSet::new();
        let mut patient_urn = String::new();
        let mut patients = 0;
        for e in entries {
            let url = e["fullUrl"].as_str().unwrap();
            let uuid = url.strip_prefix("urn:uuid:").expect("urn:uuid fullUrl");
            assert_eq!(uuid.len(), 36, "{uuid}");
            assert_eq!(&uuid[14..15], "4", "version 4: {uuid}");
            assert!("89ab".contains(&uuid[19..20]), "variant: {uuid}");
            assert!(urls.insert(url.to_owned()), "duplicate fullUrl {url}");
            let r = &e["resource"];
            let ty = r["resourceType"].as_str().unwrap();
            assert_eq!(e["request"]["method"], "POST");
            assert_eq!(e["request"]["url"], ty);
            if ty == "Patient" {
                patients += 1;
                patient_urn = url.to_owned();
            } else {
                let subject = match ty {
                    "RelatedPerson" | "AllergyIntolerance" => &r["patient"],
                    _ => &r["subject"],
                };
                assert_eq!(subject["reference"], patient_urn.as_str(), "{ty}");
            }
        }
        assert_eq!(patients, children);
        entries.iter().map(|e| e["resource"].clone()).collect()
    }

    #[test]
    fn transaction_bundles_refer_by_urn_uuid() {
        let s = Synth::new(42, TODAY);
        let mut rng = Rng::new(1);
        let b = s.transaction(10..25, &mut rng);
        let n: usize = (10..25).map(|i| s.resource_count(i)).sum();
        assert_eq!(check_transaction(&b, 15).len(), n);
        // The 20-entry bundle of the `transaction` workload.
        for i in 0..200 {
            let b = s.transaction_child(i, 20, &mut rng);
            assert_eq!(check_transaction(&b, 1).len(), 20);
        }
        let b = s.transaction_child(0, 3, &mut rng);
        assert_eq!(check_transaction(&b, 1).len(), 3);
        // Same seed and stream: same bundle.
        assert_eq!(
            s.transaction_child(5, 20, &mut Rng::new(9)),
            s.transaction_child(5, 20, &mut Rng::new(9))
        );
    }

    #[test]
    fn rng_below_is_in_range_and_spread() {
        let mut r = Rng::new(3);
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            counts[r.below(10) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }
}

/// The synthetic data must pass the server's own validator (validation stays on in the
/// load; a rejected resource is a benchmark error).
#[cfg(test)]
mod validator_tests {
    use super::*;

    #[test]
    fn every_generated_resource_passes_the_project_validator() {
        let s = Synth::new(42, today_days());
        // Control: the validator does reject a broken copy (wrong check digit).
        let mut broken = s.patient(0);
        let nhs = broken["identifier"][0]["value"]
            .as_str()
            .unwrap()
            .to_owned();
        let last = (nhs.as_bytes()[9] - b'0' + 1) % 10;
        broken["identifier"][0]["value"] = json!(format!("{}{last}", &nhs[..9]));
        assert!(
            !fhir::validate(&broken).is_empty(),
            "validator accepted {broken}"
        );
        for i in 0..300 {
            let mut all = vec![s.patient(i)];
            all.extend(s.dependents(i, "Patient/0190c6a0-0000-7000-8000-000000000001"));
            for r in all {
                let issues = fhir::validate(&r);
                assert!(issues.is_empty(), "child {i}: {r}\n{issues:#?}");
            }
        }
    }

    /// Every entry of the generated transaction Bundles (references by `urn:uuid`, growth
    /// histories, the 20-entry workload bundle) passes the validator, and the Bundle itself
    /// does too.
    #[test]
    fn transaction_entries_pass_the_project_validator() {
        let s = Synth::new(42, today_days());
        let mut rng = Rng::new(3);
        let mut bundles = vec![s.transaction(0..60, &mut rng)];
        bundles.extend((60..100).map(|i| s.transaction_child(i, 20, &mut rng)));
        let mut seen_complex = false;
        for b in &bundles {
            let issues = fhir::validate(b);
            assert!(issues.is_empty(), "bundle: {issues:#?}");
            for e in b["entry"].as_array().unwrap() {
                let r = &e["resource"];
                let issues = fhir::validate(r);
                assert!(issues.is_empty(), "{r}\n{issues:#?}");
            }
        }
        for i in 0..60 {
            seen_complex |= s.is_complex(i);
        }
        assert!(seen_complex, "no complex child among the first 60");
    }
}

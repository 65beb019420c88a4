//! NHS Number: ten digits, the last a modulus-11 check digit over the first nine.
//!
//! Weights 10 down to 2 multiply the first nine digits; the check digit is
//! `11 - (sum mod 11)`, where 11 becomes 0 and 10 means the nine digits cannot start a
//! valid NHS Number.

use std::fmt;
use std::str::FromStr;

/// The identifier system of NHS Numbers in FHIR.
pub const SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// The NHS Number a Patient (or any resource with `identifier`) carries, as stored.
pub fn of(resource: &serde_json::Value) -> Option<&str> {
    resource["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == SYSTEM)?["value"]
        .as_str()
}

/// A valid NHS Number (ten digits with a correct check digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber([u8; 10]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    /// Not exactly ten ASCII digits.
    #[error("an NHS Number must be exactly 10 digits")]
    Format,
    /// Ten digits whose last is not the modulus-11 check digit of the first nine.
    #[error("the NHS Number fails the modulus-11 check digit")]
    CheckDigit,
}

/// The check digit for nine digits (each 0-9), or `None` when the modulus-11 result is 10
/// (no NHS Number starts with these nine digits).
pub fn check_digit(first9: &[u8; 9]) -> Option<u8> {
    let sum: u32 = first9
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

impl NhsNumber {
    /// Parses exactly ten ASCII digits (no spaces) with a valid check digit.
    pub fn parse(s: &str) -> Result<NhsNumber, NhsNumberError> {
        let b = s.as_bytes();
        if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
            return Err(NhsNumberError::Format);
        }
        let mut digits = [0u8; 10];
        for (d, c) in digits.iter_mut().zip(b) {
            *d = c - b'0';
        }
        let first9: [u8; 9] = digits[..9].try_into().expect("nine digits");
        if check_digit(&first9) == Some(digits[9]) {
            Ok(NhsNumber(digits))
        } else {
            Err(NhsNumberError::CheckDigit)
        }
    }

    /// The NHS Number starting with `first9` (digits 0-9), if its check digit exists.
    pub fn from_first9(first9: [u8; 9]) -> Option<NhsNumber> {
        if first9.iter().any(|&d| d > 9) {
            return None;
        }
        let c = check_digit(&first9)?;
        let mut digits = [0u8; 10];
        digits[..9].copy_from_slice(&first9);
        digits[9] = c;
        Some(NhsNumber(digits))
    }

    /// The ten digits.
    pub fn digits(&self) -> [u8; 10] {
        self.0
    }
}

impl FromStr for NhsNumber {
    type Err = NhsNumberError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NhsNumber::parse(s)
    }
}

impl fmt::Display for NhsNumber {
    /// The ten digits without spaces, as FHIR identifiers carry them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.0 {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_numbers() {
        for ok in ["9434765919", "9990000018", "9000000009", "4010232137"] {
            let n = NhsNumber::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(n.to_string(), ok);
        }
        assert_eq!(
            NhsNumber::parse("9912003890"),
            Err(NhsNumberError::CheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("9434765918"),
            Err(NhsNumberError::CheckDigit)
        );
        assert_eq!(NhsNumber::parse("943476591"), Err(NhsNumberError::Format));
        assert_eq!(NhsNumber::parse("94347659190"), Err(NhsNumberError::Format));
        assert_eq!(
            NhsNumber::parse("943 476 5919"),
            Err(NhsNumberError::Format)
        );
        assert_eq!(NhsNumber::parse("94347659a9"), Err(NhsNumberError::Format));
        assert_eq!(NhsNumber::parse(""), Err(NhsNumberError::Format));
        assert_eq!(check_digit(&[9, 4, 3, 4, 7, 6, 5, 9, 1]), Some(9));
        // sum mod 11 == 1 → check digit 10 → no valid number.
        assert_eq!(check_digit(&[0, 0, 0, 0, 0, 0, 0, 0, 1]), Some(9));
        assert_eq!(check_digit(&[0, 0, 0, 0, 0, 0, 0, 0, 0]), Some(0));
        assert_eq!(check_digit(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), Some(1)); // 10 mod 11 = 10
        assert_eq!(check_digit(&[0, 0, 0, 0, 0, 0, 0, 4, 0]), None); // 12 mod 11 = 1 → 10
    }

    fn digits9() -> impl Strategy<Value = [u8; 9]> {
        prop::array::uniform9(0u8..10)
    }

    proptest! {
        #[test]
        fn every_prefix_with_a_check_digit_parses(first9 in digits9()) {
            match check_digit(&first9) {
                Some(c) => {
                    let n = NhsNumber::from_first9(first9).unwrap();
                    let s = n.to_string();
                    prop_assert_eq!(s.as_bytes()[9] - b'0', c);
                    prop_assert_eq!(NhsNumber::parse(&s), Ok(n));
                }
                None => {
                    prop_assert!(NhsNumber::from_first9(first9).is_none());
                    for last in 0..10u8 {
                        let s: String = first9.iter().chain([&last]).map(|d| char::from(b'0' + d)).collect();
                        prop_assert_eq!(NhsNumber::parse(&s), Err(NhsNumberError::CheckDigit));
                    }
                }
            }
        }

        #[test]
        fn any_single_digit_change_is_detected(first9 in digits9(), pos in 0usize..10, delta in 1u8..10) {
            prop_assume!(check_digit(&first9).is_some());
            let mut d = NhsNumber::from_first9(first9).unwrap().digits();
            d[pos] = (d[pos] + delta) % 10;
            let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
            prop_assert!(NhsNumber::parse(&s).is_err(), "{} accepted", s);
        }

        #[test]
        fn adjacent_transpositions_are_detected(first9 in digits9(), pos in 0usize..9) {
            prop_assume!(check_digit(&first9).is_some());
            let mut d = NhsNumber::from_first9(first9).unwrap().digits();
            prop_assume!(d[pos] != d[pos + 1]);
            d.swap(pos, pos + 1);
            let s: String = d.iter().map(|x| char::from(b'0' + x)).collect();
            prop_assert!(NhsNumber::parse(&s).is_err(), "{} accepted", s);
        }
    }
}

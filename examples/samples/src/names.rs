//! Korean personal data for the samples: names, resident registration numbers, phones and
//! addresses. Every syllable is in KS X 1001, so all of it encodes as strict EUC-KR.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand::seq::IndexedRandom;

const SURNAMES: &[&str] = &[
    "김", "이", "박", "최", "정", "강", "조", "윤", "장", "임", "한", "오", "서", "신", "권", "황",
    "안", "송", "류", "홍",
];
const GIVEN: &[&str] = &[
    "민", "서", "준", "지", "현", "우", "예", "은", "도", "하", "윤", "수", "영", "진", "호", "성",
    "연", "재", "경", "태", "혜", "상", "동", "미", "선", "희", "철", "가", "나", "다",
];

/// (city and district, roads)
const PLACES: &[(&str, &[&str])] = &[
    (
        "서울특별시 강남구",
        &["테헤란로", "역삼로", "논현로", "도산대로"],
    ),
    ("서울특별시 마포구", &["월드컵로", "양화로", "독막로"]),
    ("서울특별시 송파구", &["올림픽로", "송파대로", "백제고분로"]),
    (
        "경기도 성남시 분당구",
        &["판교역로", "정자일로", "황새울로"],
    ),
    (
        "부산광역시 해운대구",
        &["해운대로", "센텀중앙로", "달맞이길"],
    ),
    ("대구광역시 수성구", &["동대구로", "달구벌대로"]),
    ("인천광역시 연수구", &["컨벤시아대로", "송도과학로"]),
];

/// A person as legacy systems record one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) name: String,
    /// 주민등록번호 `YYMMDD-GNNNNNC` with a valid check digit.
    pub(crate) rrn: String,
    pub(crate) birth: NaiveDate,
    /// '1' male, '2' female.
    pub(crate) sex_cd: &'static str,
    pub(crate) phone: String,
    pub(crate) addr: String,
}

pub(crate) fn name<R: Rng>(rng: &mut R) -> String {
    let mut s = String::new();
    s.push_str(SURNAMES.choose(rng).copied().unwrap_or("김"));
    for _ in 0..2 {
        s.push_str(GIVEN.choose(rng).copied().unwrap_or("민"));
    }
    s
}

pub(crate) fn phone<R: Rng>(rng: &mut R) -> String {
    format!(
        "010-{:04}-{:04}",
        rng.random_range(1000..10000),
        rng.random_range(0..10000)
    )
}

pub(crate) fn address<R: Rng>(rng: &mut R) -> String {
    let (city, roads) = PLACES.choose(rng).copied().unwrap_or(PLACES[0]);
    let road = roads.choose(rng).copied().unwrap_or("중앙로");
    format!(
        "{city} {road} {}, {}동 {}호",
        rng.random_range(1..300),
        rng.random_range(101..115),
        rng.random_range(1..25) * 100 + rng.random_range(1..5)
    )
}

/// A resident registration number for someone born on `birth`.
pub(crate) fn rrn<R: Rng>(rng: &mut R, birth: NaiveDate, male: bool) -> String {
    let century = if birth.year() >= 2000 { 2 } else { 0 };
    let gender = century + if male { 1 } else { 2 };
    let mut digits: Vec<u32> = format!(
        "{:02}{:02}{:02}{gender}{:05}",
        birth.year() % 100,
        birth.month(),
        birth.day(),
        rng.random_range(0..100_000)
    )
    .chars()
    .filter_map(|c| c.to_digit(10))
    .collect();
    const WEIGHTS: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
    digits.push((11 - sum % 11) % 10);
    let s: String = digits
        .iter()
        .filter_map(|d| char::from_digit(*d, 10))
        .collect();
    format!("{}-{}", &s[..6], &s[6..])
}

pub(crate) fn person<R: Rng>(rng: &mut R, today: NaiveDate) -> Person {
    let age_days = rng.random_range(20 * 365..80 * 365);
    let birth = today - chrono::Duration::days(age_days);
    let male = rng.random_bool(0.5);
    Person {
        name: name(rng),
        rrn: rrn(rng, birth, male),
        birth,
        sex_cd: if male { "1" } else { "2" },
        phone: phone(rng),
        addr: address(rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn rrn_has_a_valid_check_digit_and_gender_digit() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let birth = NaiveDate::from_ymd_opt(1985, 7, 9).unwrap();
        for male in [true, false] {
            let r = rrn(&mut rng, birth, male);
            assert_eq!(r.len(), 14);
            assert!(r.starts_with("850709-"));
            assert_eq!(&r[7..8], if male { "1" } else { "2" });
            let d: Vec<u32> = r.chars().filter_map(|c| c.to_digit(10)).collect();
            let w = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
            let sum: u32 = d.iter().take(12).zip(w).map(|(a, b)| a * b).sum();
            assert_eq!(d[12], (11 - sum % 11) % 10);
        }
        let r = rrn(
            &mut rng,
            NaiveDate::from_ymd_opt(2001, 1, 2).unwrap(),
            false,
        );
        assert_eq!(&r[7..8], "4");
    }

    #[test]
    fn korean_text_is_strict_euc_kr() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..500 {
            let p = person(&mut rng, NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
            for s in [&p.name, &p.addr] {
                let (bytes, _, unmappable) = encoding_rs::EUC_KR.encode(s);
                assert!(!unmappable, "{s}");
                assert!(
                    bytes.iter().all(|b| *b < 0x80 || (0xA1..=0xFE).contains(b)),
                    "{s} needs the UHC extension"
                );
            }
        }
    }
}

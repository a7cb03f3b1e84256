//! UK bank holidays by region: the statutory rules (Easter, first and last Mondays, substitute
//! days) plus every one-off change since 1995. Pure code; the calendar builds on it.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// The UK bank-holiday regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// England and Wales (the default).
    EnglandAndWales,
    /// Scotland.
    Scotland,
    /// Northern Ireland.
    NorthernIreland,
}

impl Region {
    /// Reads `england-and-wales`, `scotland` or `northern-ireland` (as GOV.UK names them).
    pub fn parse(text: &str) -> Option<Region> {
        match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "england-and-wales" | "england" | "wales" => Some(Region::EnglandAndWales),
            "scotland" => Some(Region::Scotland),
            "northern-ireland" => Some(Region::NorthernIreland),
            _ => None,
        }
    }

    /// The GOV.UK name of the region.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::EnglandAndWales => "england-and-wales",
            Region::Scotland => "scotland",
            Region::NorthernIreland => "northern-ireland",
        }
    }
}

/// One bank holiday.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankHoliday {
    /// The day off.
    pub date: NaiveDate,
    /// Its name, with "(substitute day)" when it replaces a weekend date.
    pub name: String,
}

/// A year, month and day.
type Ymd = (i32, u32, u32);

/// Days moved or added by proclamation since 1995, for every region: (date a rule gives that
/// is replaced, or `None` for an extra day; the day off; its name).
const ONE_OFF: &[(Option<Ymd>, Ymd, &str)] = &[
    (
        Some((1995, 5, 1)),
        (1995, 5, 8),
        "Early May bank holiday (VE Day)",
    ),
    (None, (1999, 12, 31), "Millennium Celebrations"),
    (
        Some((2002, 5, 27)),
        (2002, 6, 4),
        "Spring bank holiday (Golden Jubilee)",
    ),
    (None, (2002, 6, 3), "Queen's Golden Jubilee"),
    (
        None,
        (2011, 4, 29),
        "Wedding of Prince William and Catherine Middleton",
    ),
    (
        Some((2012, 5, 28)),
        (2012, 6, 4),
        "Spring bank holiday (Diamond Jubilee)",
    ),
    (None, (2012, 6, 5), "Queen's Diamond Jubilee"),
    (
        Some((2020, 5, 4)),
        (2020, 5, 8),
        "Early May bank holiday (VE day)",
    ),
    (
        Some((2022, 5, 30)),
        (2022, 6, 2),
        "Spring bank holiday (Platinum Jubilee)",
    ),
    (None, (2022, 6, 3), "Platinum Jubilee bank holiday"),
    (
        None,
        (2022, 9, 19),
        "Bank Holiday for the State Funeral of Queen Elizabeth II",
    ),
    (
        None,
        (2023, 5, 8),
        "Bank holiday for the coronation of King Charles III",
    ),
];

/// St Andrew's Day became a Scottish bank holiday with the 2007 Act.
const ST_ANDREWS_FIRST_YEAR: i32 = 2007;

fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or(NaiveDate::MIN)
}

/// Easter Sunday (Gregorian, the anonymous algorithm).
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    ymd(year, month as u32, day as u32)
}

fn first_monday(year: i32, month: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Mon, 1).unwrap_or(NaiveDate::MIN)
}

fn last_monday(year: i32, month: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Mon, 5)
        .or_else(|| NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Mon, 4))
        .unwrap_or(NaiveDate::MIN)
}

fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

fn next_weekday(date: NaiveDate) -> NaiveDate {
    let mut day = date;
    while is_weekend(day) {
        day = day + Days::new(1);
    }
    day
}

/// The bank holidays of `region` in `year`, in date order.
pub fn bank_holidays(region: Region, year: i32) -> Vec<BankHoliday> {
    let mut days: Vec<BankHoliday> = Vec::with_capacity(12);
    let mut add = |date: NaiveDate, name: &str| {
        days.push(BankHoliday {
            date,
            name: name.to_owned(),
        });
    };
    let easter = easter_sunday(year);
    // A pair of consecutive holidays (New Year in Scotland, Christmas and Boxing Day): a day
    // that falls on a weekend moves to the next weekday not already taken.
    let pair = |first: NaiveDate, names: [&str; 2], add: &mut dyn FnMut(NaiveDate, &str)| {
        let mut taken: Vec<NaiveDate> = Vec::new();
        for (offset, name) in names.iter().enumerate() {
            let date = first + Days::new(offset as u64);
            if !is_weekend(date) {
                taken.push(date);
                add(date, name);
            }
        }
        for (offset, name) in names.iter().enumerate() {
            let date = first + Days::new(offset as u64);
            if is_weekend(date) {
                let mut day = next_weekday(date);
                while taken.contains(&day) {
                    day = next_weekday(day + Days::new(1));
                }
                taken.push(day);
                add(day, &format!("{name} (substitute day)"));
            }
        }
    };
    let single = |date: NaiveDate, name: &str, add: &mut dyn FnMut(NaiveDate, &str)| {
        if is_weekend(date) {
            add(next_weekday(date), &format!("{name} (substitute day)"));
        } else {
            add(date, name);
        }
    };
    match region {
        Region::Scotland => pair(ymd(year, 1, 1), ["New Year's Day", "2nd January"], &mut add),
        _ => single(ymd(year, 1, 1), "New Year's Day", &mut add),
    }
    if region == Region::NorthernIreland {
        single(ymd(year, 3, 17), "St Patrick's Day", &mut add);
    }
    add(easter - Days::new(2), "Good Friday");
    if region != Region::Scotland {
        add(easter + Days::new(1), "Easter Monday");
    }
    add(first_monday(year, 5), "Early May bank holiday");
    add(last_monday(year, 5), "Spring bank holiday");
    if region == Region::NorthernIreland {
        single(
            ymd(year, 7, 12),
            "Battle of the Boyne (Orangemen's Day)",
            &mut add,
        );
    }
    match region {
        Region::Scotland => add(first_monday(year, 8), "Summer bank holiday"),
        _ => add(last_monday(year, 8), "Summer bank holiday"),
    }
    if region == Region::Scotland && year >= ST_ANDREWS_FIRST_YEAR {
        single(ymd(year, 11, 30), "St Andrew's Day", &mut add);
    }
    pair(ymd(year, 12, 25), ["Christmas Day", "Boxing Day"], &mut add);
    for (replaced, (y, m, d), name) in ONE_OFF {
        if *y != year {
            continue;
        }
        if let Some((ry, rm, rd)) = replaced {
            let replaced = ymd(*ry, *rm, *rd);
            days.retain(|h| h.date != replaced);
        }
        days.push(BankHoliday {
            date: ymd(*y, *m, *d),
            name: (*name).to_owned(),
        });
    }
    days.sort_by_key(|h| h.date);
    days.dedup_by_key(|h| h.date);
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easter_matches_known_years() {
        assert_eq!(easter_sunday(2024), ymd(2024, 3, 31));
        assert_eq!(easter_sunday(2025), ymd(2025, 4, 20));
        assert_eq!(easter_sunday(2038), ymd(2038, 4, 25));
        assert_eq!(easter_sunday(2008), ymd(2008, 3, 23));
    }

    #[test]
    fn regions_parse_by_their_gov_uk_names() {
        assert_eq!(
            Region::parse("England-and-Wales"),
            Some(Region::EnglandAndWales)
        );
        assert_eq!(Region::parse("scotland"), Some(Region::Scotland));
        assert_eq!(
            Region::parse("northern_ireland"),
            Some(Region::NorthernIreland)
        );
        assert_eq!(Region::parse("france"), None);
    }
}

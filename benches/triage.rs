//! Criterion benchmarks of the deadline engine: one deadline per pathway target from start
//! instants spread over a year (weekends, bank holidays and both DST changes included), with
//! and without a daily window, plus building a calendar.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hearth::triage::{Calendar, CalendarSettings, Window};

/// Start instants every 7 h 13 min through 2026, so they fall at every hour of every weekday.
fn starts() -> Vec<i64> {
    let first = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    (0..1213).map(|i| first + i * 26_000_000).collect()
}

fn deadlines(c: &mut Criterion) {
    let starts = starts();
    let whole_day = Calendar::new(CalendarSettings::default());
    let office = Calendar::new(CalendarSettings {
        window: Window::parse("08:00-18:00").ok(),
        ..CalendarSettings::default()
    });
    let mut group = c.benchmark_group("deadline");
    group.throughput(Throughput::Elements(starts.len() as u64));
    for (name, calendar) in [("whole day", &whole_day), ("08:00-18:00", &office)] {
        for hours in [1i64, 24, 72] {
            group.bench_function(format!("{name}, {hours} h"), |b| {
                b.iter(|| {
                    for start in &starts {
                        black_box(
                            calendar
                                .deadline_millis(black_box(*start), hours * 3_600_000)
                                .ok(),
                        );
                    }
                })
            });
        }
    }
    group.finish();
    c.bench_function("build a calendar (1995-2100)", |b| {
        b.iter(|| Calendar::new(black_box(CalendarSettings::default())))
    });
}

criterion_group!(benches, deadlines);
criterion_main!(benches);

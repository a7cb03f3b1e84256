//! The cost of a login's password check: argon2id verification at the default cost and at
//! neighbouring ones, through the same `Hasher` the server uses (a blocking thread per check).
//! The default is chosen so that one check takes 50–150 ms on the 2-core reference machine.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hearth::accounts::{HashCost, Hasher};

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("argon2id verify");
    group.sample_size(20);
    let default = HashCost::default();
    for (name, cost) in [
        (
            "m=19456 t=2",
            HashCost {
                iterations: 2,
                ..default
            },
        ),
        ("default m=19456 t=3", default),
        (
            "m=47104 t=1",
            HashCost {
                memory_kib: 47_104,
                iterations: 1,
            },
        ),
        (
            "m=65536 t=3",
            HashCost {
                memory_kib: 65_536,
                iterations: 3,
            },
        ),
    ] {
        let hasher = Hasher::new(cost, 1).unwrap();
        let hash = runtime.block_on(hasher.hash("Sonogram#42")).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(hasher.verify(black_box("Sonogram#42"), Some(&hash))));
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);

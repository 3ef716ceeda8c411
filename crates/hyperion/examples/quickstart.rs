//! Tunes a simulated training run on 4 threads and prints progress as it goes.
//!
//! cargo run --release -p hyperion --example quickstart

use std::time::Duration;

use hyperion::{
    Budget, CategoricalDistribution, Event, FloatDistribution, IntDistribution, OptimizeConfig,
    SamplerConfig, SearchSpace, Study, TrialError,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let space = SearchSpace::builder()
        .param("lr", FloatDistribution::new(1e-5, 1e-1).log())
        .param("layers", IntDistribution::new(1, 6))
        .param("optimizer", CategoricalDistribution::new(["adam", "sgd"]))
        .build()?;
    let study = Study::builder("quickstart")
        .minimize("val_loss")
        .space(space)
        .sampler(SamplerConfig::Sobol)
        .seed(7)
        .open()?;

    // Print every new best and every 25th trial, from another thread.
    let events = study.subscribe_all();
    let printer = std::thread::spawn(move || {
        for event in events {
            match event {
                Event::BestUpdated { number, values } => {
                    println!("trial {number:>3}: new best {:.4}", values[0])
                }
                Event::StudyProgress {
                    finished,
                    total,
                    best,
                    ..
                } if finished % 25 == 0 => {
                    println!(
                        "{finished}/{} done, best {:.4}",
                        total.unwrap_or(0),
                        best.unwrap_or(f64::NAN)
                    );
                }
                Event::StudyCompleted { reason, .. } => println!("stopped: {reason:?}"),
                _ => {}
            }
        }
    });

    let config = OptimizeConfig::new(Budget::trials(100)).threads(4);
    let summary = study.optimize(&config, |trial| {
        let lr = trial.params()["lr"].as_f64().unwrap_or_default();
        let layers = trial.params()["layers"].as_i64().unwrap_or_default();
        let sgd = trial.params()["optimizer"].as_str() == Some("sgd");
        // A define-by-run parameter, only for SGD, as in Optuna.
        let momentum = if sgd {
            trial.suggest_float("momentum", 0.0, 0.99)?
        } else {
            0.9
        };
        // A simulated training curve: the loss decays towards a floor set by the params.
        let floor = (lr.log10() + 3.0).powi(2) * 0.05
            + (layers as f64 - 4.0).abs() * 0.03
            + (momentum - 0.9).abs() * 0.2;
        let mut loss = 2.0;
        for epoch in 0..10 {
            loss = floor + (loss - floor) * 0.6;
            trial.report(epoch, loss)?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok::<_, TrialError>(loss)
    })?;
    drop(study);
    printer.join().ok();

    let best = summary.best.ok_or("no trial completed")?;
    let params: Vec<String> = best
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "best trial {} with val_loss {:.4}: {}",
        best.number,
        best.value().unwrap_or(f64::NAN),
        params.join(" ")
    );
    Ok(())
}

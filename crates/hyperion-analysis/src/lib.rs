//! What a person looks at to understand a study: the data of each plot, aggregated to what a
//! screen can show ([`plots`]), parameter importance ([`importance`], PED-ANOVA as in Optuna
//! 5.0), the plots drawn as SVG ([`svg`]) and one self-contained HTML report ([`report`]).
//!
//! Everything is computed from a [`StudyView`](hyperion_core::StudyView), so the dashboard,
//! `hyperion plot`, `hyperion report` and `hyperion importance` draw the same data with the
//! same code and cannot disagree. No plot grows with the study beyond a few marks per pixel.

pub mod importance;
pub mod plots;
pub mod report;
pub mod svg;

pub use importance::{Importance, ParamImportance};
pub use plots::{Kind, Options, Plot, PlotError};

use thiserror::Error;

/// What is wrong with a search space, a study specification or a suggestion.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    #[error("parameter \"{param}\": {reason}")]
    InvalidParam { param: String, reason: String },
    #[error("parameter \"{param}\" is declared twice")]
    DuplicateParam { param: String },
    #[error("parameter \"{param}\": its condition names an unknown parent \"{parent}\"")]
    UnknownParent { param: String, parent: String },
    #[error(
        "parameter \"{param}\": its condition needs \"{parent}\" = {value}, which is not in {domain}"
    )]
    ImpossibleCondition {
        param: String,
        parent: String,
        value: String,
        domain: String,
    },
    #[error("the conditions form a cycle: {} -> {}", params.join(" -> "), params[0])]
    ConditionCycle { params: Vec<String> },
    #[error(
        "parameter \"{param}\" is already defined as {existing} in this study; it cannot now be {requested} \
         (use another name, or a new study)"
    )]
    ParamConflict {
        param: String,
        existing: String,
        requested: String,
    },
    #[error("invalid study: {0}")]
    InvalidStudy(String),
    /// A change log that does not fold: a bug in a store, or a corrupted store.
    #[error("the change log is inconsistent: {0}")]
    Inconsistent(String),
}

//! Search spaces: named parameters, their distributions and the conditions that activate them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::{Distribution, Error, ParamValue, Params};

/// Makes a parameter active only when its parent is active and takes one of `values`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub parent: String,
    pub values: Vec<ParamValue>,
}

impl Condition {
    pub fn new<V: Into<ParamValue>>(parent: &str, values: impl IntoIterator<Item = V>) -> Self {
        Condition {
            parent: parent.to_owned(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

/// One named parameter of a space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    #[serde(flatten)]
    pub distribution: Distribution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// A validated search space.
///
/// Invariants, checked once in [`SearchSpace::new`]: names are unique, every distribution is
/// valid, every condition names an existing parent and only values that parent can take, and the
/// conditions have no cycle. [`SearchSpace::sampling_order`] lists parents before children.
///
/// Its serde form is a list of parameters, each `{"name": …, "type": …, …, "condition":
/// {"parent": …, "values": […]}}`; deserializing validates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Param>", into = "Vec<Param>")]
pub struct SearchSpace {
    params: Vec<Param>,
    /// Indices into `params`, parents before children.
    order: Vec<usize>,
}

impl SearchSpace {
    pub fn builder() -> SearchSpaceBuilder {
        SearchSpaceBuilder::default()
    }

    /// Validates `params` (in declared order) into a space.
    pub fn new(params: Vec<Param>) -> Result<Self, Error> {
        let mut index = HashMap::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            if p.name.is_empty() {
                return Err(Error::InvalidParam {
                    param: String::new(),
                    reason: "the name is empty".into(),
                });
            }
            if index.insert(p.name.as_str(), i).is_some() {
                return Err(Error::DuplicateParam {
                    param: p.name.clone(),
                });
            }
            p.distribution
                .validate()
                .map_err(|reason| Error::InvalidParam {
                    param: p.name.clone(),
                    reason,
                })?;
        }
        for p in &params {
            let Some(cond) = &p.condition else { continue };
            let Some(&parent) = index.get(cond.parent.as_str()) else {
                return Err(Error::UnknownParent {
                    param: p.name.clone(),
                    parent: cond.parent.clone(),
                });
            };
            if cond.values.is_empty() {
                return Err(Error::InvalidParam {
                    param: p.name.clone(),
                    reason: format!("the condition on \"{}\" lists no values", cond.parent),
                });
            }
            let parent_dist = &params[parent].distribution;
            if let Some(v) = cond.values.iter().find(|v| !parent_dist.contains(v)) {
                return Err(Error::ImpossibleCondition {
                    param: p.name.clone(),
                    parent: cond.parent.clone(),
                    value: v.to_string(),
                    domain: parent_dist.to_string(),
                });
            }
        }
        let order = sampling_order(&params, &index)?;
        Ok(SearchSpace { params, order })
    }

    /// Parameters in declared order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Parameters with every parent before its children (declared order otherwise).
    pub fn sampling_order(&self) -> impl Iterator<Item = &Param> + '_ {
        self.order.iter().map(|&i| &self.params[i])
    }

    /// Indices into [`SearchSpace::params`] in sampling order.
    pub fn sampling_indices(&self) -> &[usize] {
        &self.order
    }

    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Whether `param` is active given the values chosen so far for its ancestors
    /// (an absent parent means an inactive parent).
    pub fn is_active(param: &Param, chosen: &Params) -> bool {
        match &param.condition {
            None => true,
            Some(c) => chosen.get(&c.parent).is_some_and(|v| c.values.contains(v)),
        }
    }

    /// Checks that `params` is a point of this space: every active parameter present with a
    /// value in its domain, no inactive or unknown parameter. Used for enqueued trials.
    pub fn check_point(&self, params: &Params) -> Result<(), Error> {
        for p in self.sampling_order() {
            let active = Self::is_active(p, params);
            match (params.get(&p.name), active) {
                (Some(v), true) if !p.distribution.contains(v) => {
                    return Err(Error::InvalidParam {
                        param: p.name.clone(),
                        reason: format!("{v} is not in {}", p.distribution),
                    });
                }
                (None, true) => {
                    return Err(Error::InvalidParam {
                        param: p.name.clone(),
                        reason: "missing".into(),
                    });
                }
                (Some(_), false) => {
                    return Err(Error::InvalidParam {
                        param: p.name.clone(),
                        reason: "given, but its condition is not met".into(),
                    });
                }
                _ => {}
            }
        }
        if let Some(name) = params.keys().find(|k| self.get(k).is_none()) {
            return Err(Error::InvalidParam {
                param: name.clone(),
                reason: "not in the search space".into(),
            });
        }
        Ok(())
    }
}

fn sampling_order(params: &[Param], index: &HashMap<&str, usize>) -> Result<Vec<usize>, Error> {
    // Each parameter has at most one parent, so the conditions form a forest unless a chain of
    // parents comes back to itself.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Visiting,
        Done,
    }
    let parent_of = |i: usize| {
        params[i]
            .condition
            .as_ref()
            .map(|c| index[c.parent.as_str()])
    };
    let mut marks = vec![Mark::New; params.len()];
    let mut order = Vec::with_capacity(params.len());
    for start in 0..params.len() {
        let mut chain: Vec<usize> = Vec::new();
        let mut cur = Some(start);
        while let Some(i) = cur {
            match marks[i] {
                Mark::Done => break,
                Mark::Visiting => {
                    let at = chain.iter().position(|&j| j == i).unwrap_or(0);
                    let names: Vec<String> = chain[at..]
                        .iter()
                        .map(|&j| params[j].name.clone())
                        .collect();
                    return Err(Error::ConditionCycle { params: names });
                }
                Mark::New => {
                    marks[i] = Mark::Visiting;
                    chain.push(i);
                    cur = parent_of(i);
                }
            }
        }
        for &i in chain.iter().rev() {
            marks[i] = Mark::Done;
            order.push(i);
        }
    }
    Ok(order)
}

impl TryFrom<Vec<Param>> for SearchSpace {
    type Error = Error;
    fn try_from(params: Vec<Param>) -> Result<Self, Error> {
        SearchSpace::new(params)
    }
}

impl From<SearchSpace> for Vec<Param> {
    fn from(space: SearchSpace) -> Self {
        space.params
    }
}

/// Builds a [`SearchSpace`]; [`SearchSpaceBuilder::build`] validates.
///
/// ```
/// use hyperion_core::{CategoricalDistribution, Condition, FloatDistribution, IntDistribution, SearchSpace};
///
/// let space = SearchSpace::builder()
///     .param("lr", FloatDistribution::new(1e-5, 1e-1).log())
///     .param("layers", IntDistribution::new(1, 4))
///     .param("optimizer", CategoricalDistribution::new(["adam", "sgd"]))
///     .param_if("momentum", FloatDistribution::new(0.0, 0.99), Condition::new("optimizer", ["sgd"]))
///     .build()?;
/// assert_eq!(space.len(), 4);
/// # Ok::<(), hyperion_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct SearchSpaceBuilder {
    params: Vec<Param>,
}

impl SearchSpaceBuilder {
    pub fn param(mut self, name: &str, distribution: impl Into<Distribution>) -> Self {
        self.params.push(Param {
            name: name.to_owned(),
            distribution: distribution.into(),
            condition: None,
        });
        self
    }

    /// A parameter active only when `condition` holds.
    pub fn param_if(
        mut self,
        name: &str,
        distribution: impl Into<Distribution>,
        condition: Condition,
    ) -> Self {
        self.params.push(Param {
            name: name.to_owned(),
            distribution: distribution.into(),
            condition: Some(condition),
        });
        self
    }

    pub fn build(self) -> Result<SearchSpace, Error> {
        SearchSpace::new(self.params)
    }
}

#[cfg(test)]
mod tests;

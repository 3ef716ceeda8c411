use hyperion_core::{Distribution, ParamValue, Params, SearchSpace};
use rand::RngExt;

use crate::{SampleContext, Sampler, SamplerError, from_unit, name_salt, stream};

/// Independent uniform sampling (on each parameter's scale).
#[derive(Clone, Debug)]
pub struct RandomSampler {
    seed: u64,
}

impl RandomSampler {
    pub fn new(seed: u64) -> Self {
        RandomSampler { seed }
    }
}

impl Sampler for RandomSampler {
    fn ignores_results(&self) -> bool {
        true
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<Params>, SamplerError> {
        let mut rng = stream(self.seed, ctx.trial_number, 0);
        let mut params = Params::new();
        for p in space.sampling_order() {
            if SearchSpace::is_active(p, &params) {
                params.insert(p.name.clone(), from_unit(&p.distribution, rng.random()));
            }
        }
        Ok(Some(params))
    }

    fn suggest_param(
        &self,
        name: &str,
        distribution: &Distribution,
        ctx: &SampleContext<'_>,
    ) -> Result<ParamValue, SamplerError> {
        let mut rng = stream(self.seed, ctx.trial_number, name_salt(name));
        Ok(from_unit(distribution, rng.random()))
    }
}

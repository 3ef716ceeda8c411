use hyperion_core::{Distribution, ParamValue, Params, SearchSpace};

use crate::{SampleContext, Sampler, SamplerError, from_unit, name_salt, stream};
use rand::RngExt;

/// Points per scrambled Sobol sequence (sobol_burley's limit); after that a new scramble starts.
const POINTS_PER_SEQUENCE: u64 = 1 << 16;
/// Dimensions sobol_burley provides.
const DIMENSIONS: usize = 256;

/// Owen-scrambled Sobol quasi-random sampling: points cover the space more evenly than random
/// ones. The trial with place `n` ([`SampleContext::place`]: its number, less the retries before
/// it) takes point `n` of the sequence, so a reopened study continues the sequence and a retry
/// skips no point.
///
/// Declared parameter `i` (in declared order) is dimension `i`; an inactive one leaves its
/// dimension unused. Define-by-run parameters get a dimension from their name's hash and a
/// scramble of their own. After 65,536 trials the sequence restarts with a new scramble.
#[derive(Clone, Debug)]
pub struct SobolSampler {
    seed: u64,
}

impl SobolSampler {
    pub fn new(seed: u64) -> Self {
        SobolSampler { seed }
    }

    fn unit(&self, trial_number: u64, dimension: usize, salt: u64) -> f64 {
        let index = (trial_number % POINTS_PER_SEQUENCE) as u32;
        let sequence = trial_number / POINTS_PER_SEQUENCE;
        let scramble: u32 = stream(self.seed, sequence, salt).random();
        sobol_burley::sample(index, dimension as u32, scramble) as f64
    }
}

impl Sampler for SobolSampler {
    fn ignores_results(&self) -> bool {
        true
    }

    fn walks_a_sequence(&self) -> bool {
        true
    }

    fn suggest(
        &self,
        space: &SearchSpace,
        ctx: &SampleContext<'_>,
    ) -> Result<Option<Params>, SamplerError> {
        if space.len() > DIMENSIONS {
            return Err(SamplerError::Config(format!(
                "the sobol sampler handles at most {DIMENSIONS} parameters, the space has {}",
                space.len()
            )));
        }
        let mut params = Params::new();
        for &dimension in space.sampling_indices() {
            let p = &space.params()[dimension];
            if SearchSpace::is_active(p, &params) {
                let u = self.unit(ctx.place(), dimension, 0);
                params.insert(p.name.clone(), from_unit(&p.distribution, u));
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
        let salt = name_salt(name);
        let u = self.unit(ctx.place(), (salt % DIMENSIONS as u64) as usize, salt);
        Ok(from_unit(distribution, u))
    }
}

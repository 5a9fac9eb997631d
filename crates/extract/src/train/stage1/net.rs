//! The model under training: the backbone + head, its candle variables sorted by key, PyTorch's
//! default init, the momentum buffers of the trainable variables, the SGD step through candle's
//! autograd, and the exchange of weights with the hand-written CPU pass.

use super::Recipe;
use crate::error::Result;
use crate::model::backbones::{Arch, Backbone};
use crate::train::cpu::SmallCnnCpu;
use candle_core::{D, DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};

pub(super) struct Net {
    pub model: Box<dyn Backbone>,
    /// Every variable (weights and BatchNorm running statistics), sorted by key.
    pub vars: Vec<(String, Var)>,
    /// Indices into `vars` of the trainable variables (not the running statistics).
    pub trainable: Vec<usize>,
    /// SGD momentum buffer of each `trainable` variable.
    pub momentum: Vec<Tensor>,
}

fn is_buffer(key: &str) -> bool {
    key.ends_with("running_mean") || key.ends_with("running_var")
}

fn fnv(key: &str) -> u64 {
    let mut h = bank::Fnv::default();
    h.write(key.as_bytes());
    h.0
}

/// PyTorch's default init, drawn from a generator seeded by (seed, key).
fn init_weights(vars: &[(String, Var)], seed: u64, head: &str) -> Result<()> {
    let fan_in = |key: &str| -> Option<usize> {
        let w = vars.iter().find(|(k, _)| k == key)?;
        Some(w.1.dims().iter().skip(1).product())
    };
    for (key, var) in vars {
        let n = var.elem_count();
        let bound = if key.ends_with(".weight") && var.rank() >= 2 {
            1.0 / (fan_in(key).unwrap_or(1) as f64).sqrt()
        } else if key == &format!("{head}.bias") {
            1.0 / (fan_in(&format!("{head}.weight")).unwrap_or(1) as f64).sqrt()
        } else {
            continue; // BN weight 1 / bias 0, running stats 0 / 1: the VarMap's constants.
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ fnv(key));
        let v: Vec<f32> = (0..n)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        var.set(&Tensor::from_vec(v, var.shape(), var.device())?)?;
    }
    Ok(())
}

impl Net {
    /// `arch` + a `num_classes` head with PyTorch's default init from `seed`, zero momentum.
    pub fn build(arch: Arch, num_classes: usize, seed: u64, device: &Device) -> Result<Net> {
        let vm = VarMap::new();
        let model = arch.build(
            Some(num_classes),
            VarBuilder::from_varmap(&vm, DType::F32, device),
        )?;
        let mut vars: Vec<(String, Var)> = vm
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        init_weights(&vars, seed, arch.head_name())?;
        let trainable: Vec<usize> = (0..vars.len())
            .filter(|&i| !is_buffer(&vars[i].0))
            .collect();
        let momentum: Vec<Tensor> = trainable
            .iter()
            .map(|&i| vars[i].1.as_tensor().zeros_like())
            .collect::<candle_core::Result<_>>()?;
        Ok(Net {
            model,
            vars,
            trainable,
            momentum,
        })
    }

    /// Trainable scalars.
    pub fn parameters(&self) -> usize {
        self.trainable
            .iter()
            .map(|&i| self.vars[i].1.elem_count())
            .sum()
    }

    /// The key of momentum buffer `j` (`momentum.<variable key>`).
    pub fn momentum_key(&self, j: usize) -> String {
        format!("momentum.{}", self.vars[self.trainable[j]].0)
    }

    /// Forward (BatchNorm in train mode), cross-entropy, backward through candle's autograd and
    /// one SGD step; the batch's mean loss and predictions.
    pub fn autograd_step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        lr: f64,
        recipe: &Recipe,
    ) -> Result<(f64, Vec<u32>)> {
        let feats = self.model.features_t(x, true)?;
        let logits = self
            .model
            .head()
            .expect("built with a head")
            .forward(&feats)?;
        let loss = candle_nn::loss::cross_entropy(&logits, y)?;
        let grads = loss.backward()?;
        for (j, &i) in self.trainable.iter().enumerate() {
            let var = &self.vars[i].1;
            let wt = var.as_tensor().detach();
            let g = match grads.get(var) {
                Some(g) => g.detach(),
                None => wt.zeros_like()?,
            };
            let g = (g + (&wt * recipe.weight_decay)?)?;
            let b = ((&self.momentum[j] * recipe.momentum)? + g)?.detach();
            var.set(&(wt - (&b * lr)?)?)?;
            self.momentum[j] = b;
        }
        let pred: Vec<u32> = logits.argmax(D::Minus1)?.to_vec1()?;
        Ok((loss.to_scalar::<f32>()? as f64, pred))
    }

    /// The hand-written CPU pass of the small CNN, holding these weights and momentum buffers.
    pub fn to_cpu_pass(&self, in_channels: usize, num_classes: usize) -> Result<SmallCnnCpu> {
        let mut f = SmallCnnCpu::new(in_channels, num_classes);
        for (k, v) in &self.vars {
            f.set(k, &v.as_tensor().flatten_all()?.to_vec1::<f32>()?)?;
        }
        for j in 0..self.trainable.len() {
            f.set(
                &self.momentum_key(j),
                &self.momentum[j].flatten_all()?.to_vec1::<f32>()?,
            )?;
        }
        Ok(f)
    }

    /// Take the weights and momentum buffers back from the CPU pass.
    pub fn sync_from(&mut self, f: &SmallCnnCpu, device: &Device) -> Result<()> {
        for (k, v) in &self.vars {
            let data = f.get(k).expect("every small-CNN variable is known");
            v.set(&Tensor::from_slice(data, v.shape(), device)?)?;
        }
        for j in 0..self.trainable.len() {
            let data = f
                .get(&self.momentum_key(j))
                .expect("every small-CNN parameter has a momentum buffer");
            let shape = self.vars[self.trainable[j]].1.shape();
            self.momentum[j] = Tensor::from_slice(data, shape, device)?;
        }
        Ok(())
    }
}

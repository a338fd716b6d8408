//! The classic cart-pole balancing task (Barto, Sutton & Anderson 1983) with Gymnasium's
//! `CartPole-v1` constants: the sanity environment on which the agents must learn.

use crate::{Env, EnvError, Rng, Step};

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
const HALF_LENGTH: f64 = 0.5;
const POLE_MASS_LENGTH: f64 = MASS_POLE * HALF_LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const THETA_LIMIT: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_LIMIT: f64 = 2.4;

/// Cart-pole with Euler integration, reward 1 per step, termination when the pole passes
/// 12 degrees or the cart leaves [-2.4, 2.4], truncation after `max_steps` (500 by default).
///
/// Observation: cart position, cart velocity, pole angle, pole angular velocity.
/// Actions: 0 pushes left, 1 pushes right.
#[derive(Clone, Debug)]
pub struct CartPole {
    state: [f64; 4],
    steps: u32,
    max_steps: u32,
}

impl Default for CartPole {
    fn default() -> Self {
        Self::new(500)
    }
}

impl CartPole {
    pub fn new(max_steps: u32) -> Self {
        Self {
            state: [0.0; 4],
            steps: 0,
            max_steps,
        }
    }

    fn write(&self, obs: &mut [f32]) {
        for (o, s) in obs.iter_mut().zip(self.state) {
            *o = s as f32;
        }
    }
}

impl Env for CartPole {
    fn observation_size(&self) -> usize {
        4
    }

    fn action_count(&self) -> usize {
        2
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        for s in &mut self.state {
            *s = rng.uniform(-0.05, 0.05);
        }
        self.steps = 0;
        self.write(obs);
    }

    fn step(&mut self, action: usize, obs: &mut [f32]) -> Step {
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if action == 1 { FORCE_MAG } else { -FORCE_MAG };
        let (sin, cos) = theta.sin_cos();
        let temp = (force + POLE_MASS_LENGTH * theta_dot * theta_dot * sin) / TOTAL_MASS;
        let theta_acc = (GRAVITY * sin - cos * temp)
            / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos / TOTAL_MASS));
        let x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos / TOTAL_MASS;
        self.state = [
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            theta + TAU * theta_dot,
            theta_dot + TAU * theta_acc,
        ];
        self.steps += 1;
        self.write(obs);
        let terminated = self.state[0].abs() > X_LIMIT || self.state[2].abs() > THETA_LIMIT;
        Step {
            reward: 1.0,
            terminated,
            truncated: !terminated && self.steps >= self.max_steps,
        }
    }

    fn state(&self) -> Vec<f64> {
        let mut s = self.state.to_vec();
        s.push(self.steps as f64);
        s
    }

    fn restore(&mut self, state: &[f64]) -> Result<(), EnvError> {
        if state.len() != 5 {
            return Err(EnvError::BadState(format!(
                "cart-pole state has 5 numbers, got {}",
                state.len()
            )));
        }
        self.state.copy_from_slice(&state[..4]);
        self.steps = state[4] as u32;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushing_one_way_falls_over_quickly() {
        let mut env = CartPole::default();
        let mut rng = Rng::seed_from(0);
        let mut obs = [0.0f32; 4];
        env.reset(&mut rng, &mut obs);
        assert!(obs.iter().all(|v| v.abs() <= 0.05));
        let mut n = 0;
        loop {
            n += 1;
            let s = env.step(1, &mut obs);
            if s.done() {
                assert!(s.terminated && !s.truncated);
                break;
            }
        }
        assert!((5..60).contains(&n), "fell after {n} steps");
    }

    #[test]
    fn truncates_at_the_step_limit() {
        let mut env = CartPole::new(3);
        let mut rng = Rng::seed_from(1);
        let mut obs = [0.0f32; 4];
        env.reset(&mut rng, &mut obs);
        assert!(!env.step(0, &mut obs).done());
        assert!(!env.step(1, &mut obs).done());
        let s = env.step(0, &mut obs);
        assert!(s.truncated && !s.terminated);
    }

    #[test]
    fn one_step_matches_hand_computed_dynamics() {
        let mut env = CartPole::default();
        env.restore(&[0.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
        let mut obs = [0.0f32; 4];
        env.step(1, &mut obs);
        // theta_acc = -temp / (0.5 * (4/3 - 0.1/1.1)), temp = 10/1.1
        let temp = 10.0 / 1.1;
        let theta_acc = -temp / (0.5 * (4.0 / 3.0 - 0.1 / 1.1));
        let x_acc = temp - 0.05 * theta_acc / 1.1;
        assert_eq!(env.state()[1], 0.02 * x_acc);
        assert_eq!(env.state()[3], 0.02 * theta_acc);
        assert_eq!(env.state()[0], 0.0);
    }
}

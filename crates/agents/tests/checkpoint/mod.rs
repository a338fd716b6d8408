//! Helpers shared by the DQN and PPO state tests: comparing saved states byte for byte, and
//! the round trip a checkpoint file puts a state through.

use ratchet_agents::TrainingState;

/// Every tensor's bytes, by name.
pub fn bytes(state: &TrainingState) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    let mut out: Vec<_> = state
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.shape.clone(),
                t.data.iter().map(|x| x.to_bits()).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

/// What a checkpoint on disk gives back: tensors as they are, metadata through JSON text.
pub fn through_json(state: TrainingState) -> TrainingState {
    let text = serde_json::to_string(&state.meta).unwrap();
    TrainingState {
        meta: serde_json::from_str(&text).unwrap(),
        ..state
    }
}

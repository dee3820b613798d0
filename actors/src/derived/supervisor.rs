//! Supervisor of the derived actors: detector first (it must be ready before aggregators
//! report closed windows), then the aggregators. One-for-all: they rebuild together.

use std::collections::HashSet;
use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info, warn};

use super::aggregator::{AggregatorActor, AggregatorArgs};
use super::detector::{DetectorActor, DetectorArgs};
use super::messages::DerivedMsg;
use super::DerivedParams;
use crate::events::EventKind;
use crate::pipeline::messages::SupervisorMsg;
use crate::pipeline::restart::{RestartBudget, Verdict};
use crate::pipeline::{PipelineState, StatusHandle};
use crate::schema::derived::alerts_spec;
use crate::schema::raw_table_spec;

pub use crate::pipeline::DERIVED_PIPELINE as PIPELINE;

pub struct DerivedSupervisor;

pub struct DerivedSupervisorState {
    params: DerivedParams,
    status: StatusHandle,
    generation: u64,
    children: Vec<(ActorCell, &'static str)>,
    budget: RestartBudget,
    failed: bool,
    draining: bool,
}

impl Actor for DerivedSupervisor {
    type Msg = SupervisorMsg;
    type State = DerivedSupervisorState;
    type Arguments = (DerivedParams, StatusHandle);

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        (params, status): (DerivedParams, StatusHandle),
    ) -> Result<DerivedSupervisorState, ActorProcessingErr> {
        myself.send_message(SupervisorMsg::Restart { generation: 0 })?;
        status.set_state(PipelineState::Starting);
        Ok(DerivedSupervisorState {
            params,
            status,
            generation: 0,
            children: Vec::new(),
            budget: RestartBudget::default(),
            failed: false,
            draining: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut DerivedSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart { generation }
                if generation == state.generation && !state.failed && !state.draining =>
            {
                match spawn(&myself, state).await {
                    Ok(()) => {
                        state.status.set_state(PipelineState::Running);
                        state
                            .params
                            .metrics
                            .pipeline_up
                            .with_label_values(&[PIPELINE])
                            .set(1);
                    }
                    Err((role, e)) => on_failure(&myself, state, role, "start", e.to_string()),
                }
            }
            SupervisorMsg::Restart { .. } | SupervisorMsg::Tick => {}
            SupervisorMsg::Drain(reply) => {
                // Open windows are rebuilt from the lake on the next start; what matters is that
                // deliveries already queued (FATAL errors above all) are handled: aggregators
                // first (they may send closed windows to the detector), then the detector.
                state.draining = true;
                let mut order: Vec<ActorCell> =
                    state.children.iter().map(|(c, _)| c.clone()).collect();
                order.rotate_left(1);
                for cell in order {
                    let actor: ActorRef<DerivedMsg> = cell.into();
                    let _ = ractor::call_t!(actor, DerivedMsg::Sync, 10_000);
                }
                kill_all(state);
                state.status.set_state(PipelineState::Stopped);
                let _ = reply.send(());
                myself.stop(Some("drained".into()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut DerivedSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason, text) = match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                let text = err.to_string();
                (
                    cell,
                    if text.contains("panic") {
                        "panic"
                    } else {
                        "error"
                    },
                    text,
                )
            }
            SupervisionEvent::ActorTerminated(cell, _, why) => {
                (cell, "exit", why.unwrap_or_default())
            }
            _ => return Ok(()),
        };
        let Some(index) = state
            .children
            .iter()
            .position(|(c, _)| c.get_id() == cell.get_id())
        else {
            return Ok(());
        };
        let (_, role) = state.children.remove(index);
        if !state.draining {
            on_failure(&myself, state, role, reason, text);
        }
        Ok(())
    }
}

fn kill_all(state: &mut DerivedSupervisorState) {
    for (cell, _) in state.children.drain(..) {
        cell.kill();
    }
}

fn on_failure(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut DerivedSupervisorState,
    role: &'static str,
    reason: &str,
    text: String,
) {
    kill_all(state);
    let m = &state.params.metrics;
    m.pipeline_up.with_label_values(&[PIPELINE]).set(0);
    match state
        .budget
        .on_failure(Instant::now(), &state.params.supervision)
    {
        Verdict::RestartAfter(backoff) => {
            m.restarts
                .with_label_values(&[PIPELINE, role, reason])
                .inc();
            state.status.record_restart(role, &text);
            state.status.set_state(PipelineState::Restarting);
            warn!(actor = role, reason, error = %text, ?backoff, "restarting derived actors");
            state.generation += 1;
            let generation = state.generation;
            myself.send_after(backoff, move || SupervisorMsg::Restart { generation });
        }
        Verdict::Exhausted(n) => {
            let msg = format!("restart budget exhausted ({n}); last failure of {role}: {text}");
            error!("{msg}");
            state.failed = true;
            state.status.set_state(PipelineState::Failed(msg));
        }
    }
}

async fn spawn(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut DerivedSupervisorState,
) -> Result<(), (&'static str, ActorProcessingErr)> {
    let p = state.params.clone();
    let mut spawned: Vec<(ActorCell, &'static str)> = Vec::new();
    let result: Result<(), (&'static str, ActorProcessingErr)> = async {
        // Everything the derived actors read must exist before they start reading.
        let mut specs: Vec<_> = EventKind::ALL.iter().map(|k| raw_table_spec(*k)).collect();
        specs.extend(p.kpis.iter().map(|(k, _)| k.spec()));
        specs.push(alerts_spec());
        for spec in &specs {
            p.lake.ensure_table(spec).await.map_err(|e| {
                (
                    "start",
                    format!("creating table {}: {e:#}", spec.name).into(),
                )
            })?;
        }
        let (detector, _) = Actor::spawn_linked(
            None,
            DetectorActor,
            DetectorArgs {
                params: p.clone(),
                slot: p.slots.detector.clone(),
            },
            myself.get_cell(),
        )
        .await
        .map_err(|e| ("detector", e.into()))?;
        spawned.push((detector.get_cell(), "detector"));
        let mut seen = HashSet::new();
        for (kind, engine) in &p.kpis {
            let Some((_, slot)) = p.slots.kpis.iter().find(|(k, _)| k == kind) else {
                continue;
            };
            if !seen.insert(*kind) {
                continue;
            }
            let role = kind.key();
            let (agg, _) = Actor::spawn_linked(
                None,
                AggregatorActor,
                AggregatorArgs {
                    kpi: *kind,
                    engine: *engine,
                    params: p.clone(),
                    slot: slot.clone(),
                    detector: Some(detector.clone()),
                },
                myself.get_cell(),
            )
            .await
            .map_err(|e| (role, e.into()))?;
            spawned.push((agg.get_cell(), role));
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            state.children = spawned;
            info!(generation = state.generation, "derived actors started");
            Ok(())
        }
        Err(e) => {
            for (cell, _) in spawned {
                cell.kill();
            }
            Err(e)
        }
    }
}

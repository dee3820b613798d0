//! How a group tells the supervisor what to run: [`ChildSpecs`] spawns the children in order
//! (bottom-up: whoever is called first), each through the [`Spawner`], which links it to the
//! supervisor and gives it its heartbeat.

use std::collections::HashSet;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorRef, SpawnErr};

use super::Progress;
use crate::error::Error;

/// A group of actors run by one supervisor.
#[async_trait::async_trait]
pub trait ChildSpecs: Send + Sync + 'static {
    /// Spawn every child, bottom-up, through `spawner`. An error fails this generation.
    async fn spawn(&self, spawner: &mut Spawner) -> Result<(), Error>;

    /// Finish what is in flight before every child is killed (the default: nothing to finish).
    async fn drain(&self, _children: &[ChildInfo]) {}

    /// True once the process is shutting down: children that stop are done, not failed, and
    /// nothing is restarted.
    fn winding_down(&self) -> bool {
        false
    }

    /// True while another instance runs this group (the rollup tables have one owner): the
    /// supervisor keeps no children and checks again at every heartbeat.
    fn standby(&self) -> bool {
        false
    }

    /// Another instance committed this group's state: stop running it here until elected
    /// again. True if the group stepped down (it stands by at the restart); false if it has
    /// no election to step down from (the failure is then an ordinary transient one).
    fn step_down(&self) -> bool {
        false
    }

    /// The group stopped here for good (unrecoverable, or its restart budget spent).
    fn failed(&self) {}
}

/// A running child, as a group's `drain` sees it.
#[derive(Clone, Debug)]
pub struct ChildInfo {
    pub cell: ActorCell,
    pub role: &'static str,
}

pub struct Spawner {
    supervisor: ActorCell,
    children: Vec<(ActorCell, &'static str, Arc<Progress>)>,
    poison: HashSet<(i32, i64)>,
    failed_role: Option<&'static str>,
    /// This generation's number (0 at the first start, +1 at every restart).
    pub generation: u64,
}

impl Spawner {
    pub(super) fn new(supervisor: ActorCell, poison: HashSet<(i32, i64)>, generation: u64) -> Self {
        Spawner {
            supervisor,
            children: Vec::new(),
            poison,
            failed_role: None,
            generation,
        }
    }

    /// Records that failed a handler twice: the consumer dead-letters them instead.
    pub fn poison(&self) -> &HashSet<(i32, i64)> {
        &self.poison
    }

    /// Spawn `actor` linked to the supervisor; `args` gets the child's heartbeat.
    pub async fn spawn<A: Actor>(
        &mut self,
        role: &'static str,
        actor: A,
        args: impl FnOnce(Arc<Progress>) -> A::Arguments,
    ) -> Result<ActorRef<A::Msg>, Error> {
        let progress = Arc::new(Progress::default());
        match Actor::spawn_linked(None, actor, args(progress.clone()), self.supervisor.clone())
            .await
        {
            Ok((actor, _)) => {
                self.children.push((actor.get_cell(), role, progress));
                Ok(actor)
            }
            Err(e) => {
                self.failed_role = Some(role);
                Err(start_error(role, e))
            }
        }
    }

    pub(super) fn finish(
        self,
    ) -> (
        Vec<(ActorCell, &'static str, Arc<Progress>)>,
        Option<&'static str>,
    ) {
        (self.children, self.failed_role)
    }
}

/// Keep the kind of a child's start failure: a fatal error in `pre_start` (the broker is
/// behind the lake, say) stops the group like any fatal error.
fn start_error(role: &'static str, e: SpawnErr) -> Error {
    match e {
        SpawnErr::StartupFailed(inner) => match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => Error::Transient(format!("{role} failed to start: {other}")),
        },
        other => Error::Transient(format!("{role} failed to start: {other}")),
    }
}

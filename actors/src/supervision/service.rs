//! Long-lived tasks that are not actors of their own — the HTTP and Flight servers, the hub's
//! heartbeat, the provisional publisher, the session sweeper, the webhook sender — run under
//! the one supervisor like every actor: a [`Service`] group per task, whose one child starts
//! the task, beats while it runs, and fails with the task's error when it ends. The error's
//! kind decides restart or stop, as for any actor; `/readyz` lists each service's state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus};
use tokio::sync::Notify;

use super::{ChildInfo, ChildSpecs, Progress, Spawner};
use crate::error::{into_actor, Error, Handled};
use crate::faults::Faults;

/// How often a service's child looks at its task (and can be handed an injected fault).
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Starts the task; it runs until `stop` is notified (a graceful end) or fails.
pub type StartTask =
    Arc<dyn Fn(Arc<Notify>) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;

/// One task as a supervised group.
pub struct Service {
    pub name: &'static str,
    pub start: StartTask,
    pub faults: Arc<Faults>,
    stop: Arc<Notify>,
    stopping: Arc<AtomicBool>,
}

impl Service {
    pub fn new(name: &'static str, faults: Arc<Faults>, start: StartTask) -> Self {
        Service {
            name,
            start,
            faults,
            stop: Arc::new(Notify::new()),
            stopping: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl ChildSpecs for Service {
    async fn spawn(&self, s: &mut Spawner) -> Result<(), Error> {
        let (name, start, stop, faults, stopping) = (
            self.name,
            self.start.clone(),
            self.stop.clone(),
            self.faults.clone(),
            self.stopping.clone(),
        );
        s.spawn(name, TaskActor, move |progress| TaskArgs {
            name,
            start,
            stop,
            faults,
            stopping,
            progress,
        })
        .await?;
        Ok(())
    }

    /// Ask the task to finish (a server closes its listener and lets its connections end) and
    /// wait for it, a few seconds at most.
    async fn drain(&self, children: &[ChildInfo]) {
        self.stopping.store(true, Ordering::Relaxed);
        // One task per service: a stored permit reaches it even between two awaits.
        self.stop.notify_one();
        let deadline = Instant::now() + Duration::from_secs(3);
        while children
            .iter()
            .any(|c| c.cell.get_status() != ActorStatus::Stopped)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn winding_down(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

pub struct TaskActor;

pub struct TaskArgs {
    name: &'static str,
    start: StartTask,
    stop: Arc<Notify>,
    faults: Arc<Faults>,
    stopping: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

pub enum TaskMsg {
    /// Timer: the task still runs (a beat), or an injected fault.
    Check,
    /// The task ended, with its outcome.
    Ended(Result<(), Arc<Error>>),
}

/// Aborts the task when the child goes, however it goes (a kill skips `post_stop`).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct TaskState {
    name: &'static str,
    faults: Arc<Faults>,
    stopping: Arc<AtomicBool>,
    progress: Arc<Progress>,
    _task: AbortOnDrop,
}

impl Actor for TaskActor {
    type Msg = TaskMsg;
    type State = TaskState;
    type Arguments = TaskArgs;

    async fn pre_start(
        &self,
        me: ActorRef<TaskMsg>,
        args: TaskArgs,
    ) -> Result<TaskState, ActorProcessingErr> {
        let future = (args.start)(args.stop);
        let to = me.clone();
        let task = tokio::spawn(async move {
            let outcome = future.await.map_err(Arc::new);
            let _ = to.cast(TaskMsg::Ended(outcome));
        });
        me.send_interval(CHECK_EVERY, || TaskMsg::Check);
        args.progress.beat();
        Ok(TaskState {
            name: args.name,
            faults: args.faults,
            stopping: args.stopping,
            progress: args.progress,
            _task: AbortOnDrop(task.abort_handle()),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<TaskMsg>,
        msg: TaskMsg,
        s: &mut TaskState,
    ) -> Result<(), ActorProcessingErr> {
        into_actor(s.handle(me, msg).await)
    }
}

impl TaskState {
    async fn handle(&mut self, me: ActorRef<TaskMsg>, msg: TaskMsg) -> Handled {
        match msg {
            TaskMsg::Check => {
                let _busy = self.progress.busy();
                self.faults.at_handler(self.name).await?;
                self.progress.beat();
                Ok(())
            }
            // Ended by a stop: done. Ended otherwise: the task's error (or an unexpected end,
            // which a restart may fix) is this child's failure.
            TaskMsg::Ended(Ok(())) if self.stopping.load(Ordering::Relaxed) => {
                me.stop(Some("ended".into()));
                Ok(())
            }
            TaskMsg::Ended(Ok(())) => {
                Err(Error::Transient(format!("{} ended by itself", self.name)))
            }
            TaskMsg::Ended(Err(e)) => Err(Error::Downstream {
                actor: self.name,
                source: e,
            }),
        }
    }
}

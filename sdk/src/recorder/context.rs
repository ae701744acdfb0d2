//! The current entity of an async task, so nested subsegments follow the work across `.await`s.

use std::future::Future;

use super::Entity;

tokio::task_local! {
    static CURRENT: Entity;
}

/// The entity the current task runs in, if any (set by the middleware or [`scope`]).
pub fn current() -> Option<Entity> {
    CURRENT.try_with(Entity::clone).ok()
}

/// Runs `future` with `entity` as the current entity. Spawned tasks do not inherit it: pass the
/// entity along (`Entity` is `Clone + Send`) and call `scope` again inside the task.
pub async fn scope<F: Future>(entity: Entity, future: F) -> F::Output {
    CURRENT.scope(entity, future).await
}

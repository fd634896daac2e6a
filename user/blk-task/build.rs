//! Links the task with the user linker script (see `mica-task-build`).

fn main() {
    mica_task_build::link_task();
}

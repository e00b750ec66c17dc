/** What happened to a container, as in `docker events`. */
export type ContainerAction =
  | 'create'
  | 'start'
  | 'kill'
  | 'stop'
  | 'die'
  | 'oom'
  | 'restart'
  | 'destroy'
  | 'exec_create'
  | 'exec_start'
  | 'exec_die';

/** One lifecycle event of a container. */
export interface ContainerEvent {
  action: ContainerAction;
  /** Full container id. */
  id: string;
  name: string;
  /** The image reference the container was created from. */
  image: string;
  time: Date;
  /** Extra details: `exitCode` on die, `signal` on kill, `execId` on exec events. */
  attributes: Record<string, string>;
}

/** The events {@link Engine.events} emits: one per action, plus `event` for every one. */
export type EngineEvents = { [A in ContainerAction]: [ContainerEvent] } & { event: [ContainerEvent] };

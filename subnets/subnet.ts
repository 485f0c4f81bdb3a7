// The subnet contract: what a subnet brings to minerflow. Everything about one subnet lives in
// its folder (subnets/<name>/): how work arrives and when it is due, what is published and where,
// how it is scored, the validator the devnet runs for it, and its workflow — which calls the
// shared training loop (workflows/training-loop.ts) with a deadline and gets the best state back.
import type { LocalValidator } from './connito/validator';
import type { Chain } from '../infra/chain/chain';
import type { Logger } from '../infra/log';
import type { Settings } from '../infra/settings';
import type { CheckpointStore } from '../infra/store/store';
import type { Trainer } from '../trainers/trainer';
import type { TrainerInput } from '../common/config';

/** What a worker hands a subnet to build its activities from. */
export interface SubnetContext {
  settings: Settings;
  store: CheckpointStore;
  chain: () => Promise<Chain>; // opened on first use, one per worker
  trainerFor: (config: TrainerInput) => Trainer;
  log: Logger;
}

type Activities = Record<string, (input: never) => Promise<unknown>>;

export interface Subnet<Control extends Activities = Activities, Gpu extends Activities = Activities> {
  name: string;
  netuid: number; // on finney
  /**
   * How work arrives. 'phase-clock': every round on the chain's block schedule, the deadline is a
   * commit window (Connito). 'job-offers': validators offer jobs over HTTP, each with its own
   * deadline, accepted or declined by capacity (Gradients).
   */
  intake: 'phase-clock' | 'job-offers';
  /** Workflow types it registers on the control worker (exported from workflows/index.ts). */
  workflows: string[];
  /** Control-queue activities: the chain, HTTP, scoring. Names are unique across subnets. */
  controlActivities(ctx: SubnetContext): Control;
  /** Gpu-queue activities beyond the shared trainSegment / lrFind: publishing what a trainer exported. */
  gpuActivities(ctx: SubnetContext): Gpu;
  /** The validator the devnet runs for this subnet: scores submissions as the subnet's validators do. */
  devnetValidator?(settings: Settings, log?: (msg: string) => void): LocalValidator;
}

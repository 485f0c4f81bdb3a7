// The chain port: the few things a miner needs from subtensor. The subtensor adapter
// (subtensor.ts: finney, testnet or the local devnet) implements it;
// tests and users can add their own.
import type { KeyringPair } from '@polkadot/keyring/types';
import type { ChainSchedule } from '../../subnets/connito/phases';

export interface ChainScore {
  uid: number;
  updatedAtBlock: number; // block at which the chain last recomputed Incentive (subtensor: the subnet's last epoch)
  incentiveShare: number; // Incentive[uid] / sum(Incentive)
  emissionRao?: number; // Emission[uid], where the chain has it
  tempo?: number; // the subnet's epoch length in blocks (Tempo)
  details?: {
    round: number;
    loss: number;
    baselineLoss: number;
    rawScore: number;
    rank?: number;
    reward: number;
    reason?: string;
  };
}

/** A registered hotkey as the metagraph shows it. */
export interface Neuron {
  hotkey: string;
  uid: number;
  stake: number; // TAO staked to the hotkey
  lastUpdate: number; // block at which it last set weights (0: never)
}

export interface Chain {
  readonly name: string;
  schedule(): Promise<ChainSchedule>;
  /** The head's block number (cheap: one RPC). */
  blockNumber(): Promise<number>;
  /** The hotkey's uid on netuid, or null if it is not registered. */
  uid(address: string, netuid: number): Promise<number | null>;
  /** Sets the hotkey's commitment, waits for inclusion, reads it back and checks it byte for byte. */
  commit(signer: KeyringPair, netuid: number, payload: string): Promise<{ block: number }>;
  commitment(address: string, netuid: number): Promise<{ block: number; payload: string } | null>;
  /** Every hotkey's commitment on netuid as of `block` (the head when absent). */
  commitments(netuid: number, block?: number): Promise<Map<string, { block: number; payload: string }>>;
  /** The subnet's neurons as of `block` (the head when absent). */
  neurons(netuid: number, block?: number): Promise<Neuron[]>;
  /** The subnet owner's list of validator hotkeys, where the chain's owner publishes one (Connito's phase service). */
  validatorWhitelist?(): Promise<string[]>;
  score(address: string, netuid: number): Promise<ChainScore | null>;
  close(): Promise<void>;
}

/** The chain refused something that will not succeed on retry (unregistered hotkey, oversize data). */
export class ChainRejectedError extends Error {
  override name = 'ChainRejectedError';
}

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
  score(address: string, netuid: number): Promise<ChainScore | null>;
  close(): Promise<void>;
}

/** The chain refused something that will not succeed on retry (unregistered hotkey, oversize data). */
export class ChainRejectedError extends Error {
  override name = 'ChainRejectedError';
}

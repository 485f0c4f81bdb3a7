// Real subtensor runtime metadata (fetched once by scripts/setup-metadata.sh from the npm package
// @bitgo/sdk-coin-tao) and the @polkadot/types registry built from it: the devnet encodes storage
// and decodes extrinsics with exactly the types @polkadot/api uses against finney.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { expandMetadata, Metadata, TypeRegistry } from '@polkadot/types';
import type { DecoratedMeta } from '@polkadot/types/metadata/decorate/types';
import { projectRoot } from '../paths';

export type SubtensorNetwork = 'finney' | 'testnet';

export interface SubtensorMaterial {
  chainName: string;
  specName: string;
  specVersion: number;
  txVersion: number;
  genesisHash: string; // the real network's; the devnet has its own genesis block
  metadata: string; // SCALE-encoded metadata (v14), hex
}

/**
 * Subtensor's own signed extensions carry no data in the extrinsic or the signed payload (unit
 * structs in the runtime); telling @polkadot/types so keeps it from warning about them.
 */
export const SUBTENSOR_SIGNED_EXTENSIONS = {
  SubtensorSignedExtension: { extrinsic: {}, payload: {} },
  CommitmentsSignedExtension: { extrinsic: {}, payload: {} },
};

export function metadataFile(network: SubtensorNetwork): string {
  return path.join(projectRoot(), '.tools', 'subtensor-metadata', `${network}.json`);
}

export function loadSubtensorMaterial(network: SubtensorNetwork = 'finney'): SubtensorMaterial {
  const file = metadataFile(network);
  if (!existsSync(file)) {
    throw new Error(
      `subtensor metadata not found at ${file}; run scripts/setup-metadata.sh (it fetches it once from @bitgo/sdk-coin-tao)`,
    );
  }
  return JSON.parse(readFileSync(file, 'utf8')) as SubtensorMaterial;
}

export interface SubtensorTypes {
  material: SubtensorMaterial;
  registry: TypeRegistry;
  metadata: Metadata;
  /** Storage key builders, calls, errors and constants, decorated from the metadata (as @polkadot/api does). */
  decorated: DecoratedMeta;
}

export function subtensorTypes(network: SubtensorNetwork = 'finney'): SubtensorTypes {
  const material = loadSubtensorMaterial(network);
  const registry = new TypeRegistry();
  const metadata = new Metadata(registry, material.metadata as `0x${string}`);
  registry.setMetadata(metadata, undefined, SUBTENSOR_SIGNED_EXTENSIONS);
  return { material, registry, metadata, decorated: expandMetadata(registry, metadata) };
}

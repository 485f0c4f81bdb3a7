// Real subtensor runtime metadata (fetched once by scripts/setup-metadata.sh: finney spec 365 as
// metadata v16 from the crate bittensor-rs, the devnet's runtime; finney spec 219 and testnet spec
// 224 as v14 from the npm package @bitgo/sdk-coin-tao) and the @polkadot/types registry built from
// it: the devnet encodes storage and decodes extrinsics with exactly the types @polkadot/api uses.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { expandMetadata, Metadata, TypeRegistry } from '@polkadot/types';
import type { RuntimeVersion, Si1TypeParameter } from '@polkadot/types/interfaces';
import { hexToU8a, stringToU8a, u8aConcat } from '@polkadot/util';
import type { DecoratedMeta } from '@polkadot/types/metadata/decorate/types';
import { projectRoot } from '../paths';

/** finney-365: the devnet's runtime (metadata v16, with runtime APIs); finney (spec 219) and testnet: v14. */
export type SubtensorNetwork = 'finney-365' | 'finney' | 'testnet';

export interface SubtensorMaterial {
  chainName: string;
  specName: string;
  specVersion: number;
  txVersion: number;
  genesisHash?: string; // the real network's, where known; the devnet has its own genesis block
  metadata: string; // SCALE-encoded metadata (v14 or v16), hex
}

/**
 * Subtensor's own signed extensions carry no data in the extrinsic or the signed payload (unit
 * structs in the runtime); telling @polkadot/types so keeps it from warning about them.
 */
export const SUBTENSOR_SIGNED_EXTENSIONS = {
  SubtensorSignedExtension: { extrinsic: {}, payload: {} },
  CommitmentsSignedExtension: { extrinsic: {}, payload: {} },
  // spec 365's
  SudoTransactionExtension: { extrinsic: {}, payload: {} },
  SubtensorTransactionExtension: { extrinsic: {}, payload: {} },
  DrandPriority: { extrinsic: {}, payload: {} },
};

export function metadataFile(network: SubtensorNetwork): string {
  return path.join(projectRoot(), '.tools', 'subtensor-metadata', `${network}.json`);
}

/** The material as stored; spec name and versions are absent when the file holds only the metadata. */
export function loadSubtensorMaterial(
  network: SubtensorNetwork = 'finney-365',
): Partial<SubtensorMaterial> & { metadata: string } {
  const file = metadataFile(network);
  if (!existsSync(file)) {
    throw new Error(
      `subtensor metadata not found at ${file}; run scripts/setup-metadata.sh (it fetches it once from @bitgo/sdk-coin-tao and the crate bittensor-rs)`,
    );
  }
  return JSON.parse(readFileSync(file, 'utf8')) as Partial<SubtensorMaterial> & { metadata: string };
}

export interface SubtensorTypes {
  material: SubtensorMaterial;
  registry: TypeRegistry;
  metadata: Metadata;
  /** Storage key builders, calls, errors and constants, decorated from the metadata (as @polkadot/api does). */
  decorated: DecoratedMeta;
}

export function subtensorTypes(network: SubtensorNetwork = 'finney-365'): SubtensorTypes {
  const stored = loadSubtensorMaterial(network);
  const registry = new TypeRegistry();
  const metadata = new Metadata(registry, stored.metadata as `0x${string}`);
  registry.setMetadata(metadata, undefined, SUBTENSOR_SIGNED_EXTENSIONS);
  const decorated = expandMetadata(registry, metadata);
  // Metadata alone (the crate's file): the runtime's version is its System.Version constant.
  const version = decorated.consts.system.version as unknown as RuntimeVersion;
  const material: SubtensorMaterial = {
    chainName: stored.chainName ?? 'Bittensor',
    specName: stored.specName ?? version.specName.toString(),
    specVersion: stored.specVersion ?? version.specVersion.toNumber(),
    txVersion: stored.txVersion ?? version.transactionVersion.toNumber(),
    genesisHash: stored.genesisHash,
    metadata: stored.metadata,
  };
  return { material, registry, metadata, decorated };
}

/**
 * The metadata at `version`, with its 'meta' magic, or null when the runtime does not offer that
 * version. From v16 the devnet also offers v15, as a node does: it encodes the same runtime
 * description (the same type registry, pallets and runtime APIs) in v15's layout, which is the
 * newest the Bittensor SDK reads. v15 names two types v16 dropped: the runtime's type and the
 * extrinsic's extension tuple, both found in the registry.
 */
export function metadataAtVersion(types: SubtensorTypes, version: number): Uint8Array | null {
  const native = types.metadata.version;
  if (version === native) return hexToU8a(types.material.metadata);
  if (native !== 16 || version !== 15) return null;
  let v15 = v15Cache.get(types);
  if (!v15) v15Cache.set(types, (v15 = v15From16(types)));
  return v15;
}

const v15Cache = new WeakMap<SubtensorTypes, Uint8Array>();

function v15From16(types: SubtensorTypes): Uint8Array {
  const v16 = types.metadata.asV16;
  const byPath = (last: string) =>
    v16.lookup.types.filter((t) => t.type.path.length && t.type.path[t.type.path.length - 1].toString() === last);
  const runtime = byPath('Runtime').find((t) => t.type.path[0].toString().endsWith('_runtime'));
  const extension = byPath('UncheckedExtrinsic')
    .flatMap((t): Si1TypeParameter[] => [...t.type.params])
    .find((p) => p.name.toString() === 'Extra' || p.name.toString() === 'Extension');
  if (!runtime || !extension?.type.isSome)
    throw new Error('devnet: the v16 metadata names no Runtime type or extrinsic extension tuple');
  const ext = v16.extrinsic;
  // The extensions of extension version 0 (the only one v15 knows), in their order.
  const v0 = [...ext.transactionExtensionsByVersion.entries()].find(([version]) => version.toNumber() === 0)?.[1];
  if (!v0) throw new Error('devnet: the v16 metadata lists no transaction extensions for version 0');
  const v15 = types.registry.createType('MetadataV15', {
    lookup: v16.lookup,
    pallets: v16.pallets.map((p) => ({
      name: p.name,
      storage: p.storage.isSome
        ? {
            prefix: p.storage.unwrap().prefix,
            items: p.storage.unwrap().items.map((i) => ({
              name: i.name,
              modifier: i.modifier,
              type: i.type,
              fallback: i.fallback,
              docs: i.docs,
            })),
          }
        : null,
      calls: p.calls.isSome ? { type: p.calls.unwrap().type } : null,
      events: p.events.isSome ? { type: p.events.unwrap().type } : null,
      constants: p.constants.map((c) => ({ name: c.name, type: c.type, value: c.value, docs: c.docs })),
      errors: p.errors.isSome ? { type: p.errors.unwrap().type } : null,
      index: p.index,
      docs: p.docs,
    })),
    extrinsic: {
      version: 4,
      addressType: ext.addressType,
      callType: ext.callType,
      signatureType: ext.signatureType,
      extraType: extension.type.unwrap(),
      signedExtensions: v0.map((i) => {
        const e = ext.transactionExtensions[i.toNumber()];
        return { identifier: e.identifier, type: e.type, additionalSigned: e.implicit };
      }),
    },
    type: runtime.id,
    apis: v16.apis.map((a) => ({
      name: a.name,
      methods: a.methods.map((m) => ({ name: m.name, inputs: m.inputs, output: m.output, docs: m.docs })),
      docs: a.docs,
    })),
    outerEnums: v16.outerEnums,
    custom: v16.custom,
  });
  return u8aConcat(stringToU8a('meta'), Uint8Array.from([15]), v15.toU8a());
}

/** The metadata versions the runtime offers (Metadata_metadata_versions), oldest first. */
export function metadataVersions(types: SubtensorTypes): number[] {
  return types.metadata.version === 16 ? [15, 16] : [types.metadata.version];
}

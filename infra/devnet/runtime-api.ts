// The runtime APIs the devnet answers through state_call: Metadata, and the subtensor APIs the
// Bittensor SDK calls to build a metagraph (NeuronInfoRuntimeApi, SubnetInfoRuntimeApi) and
// AccountNonceApi. Arguments are decoded and results encoded with the types the metadata gives each
// method, and every figure comes from the block's storage, so an answer agrees with what a client
// reads from storage directly.
import type { Codec } from '@polkadot/types/types';
import { bnToU8a, compactToU8a, u8aConcat } from '@polkadot/util';
import { metadataAtVersion, metadataVersions, type SubtensorTypes } from './metadata';
import type { State, StorageCodec } from './storage';

/** A runtime API call the devnet does not serve, or bad arguments: the node's "Execution failed". */
export class RuntimeCallError extends Error {}

interface Neuron {
  hotkey: string;
  coldkey: string;
  uid: number;
  stake: number;
  incentive: number;
  emission: number;
  lastUpdate: number;
  active: boolean;
  blockAtRegistration: number;
}

type Handler = (args: Codec[], state: State, block: number) => unknown;

export class RuntimeApi {
  private readonly handlers: Record<string, Handler>;

  constructor(
    private readonly types: SubtensorTypes,
    private readonly store: StorageCodec,
  ) {
    this.handlers = {
      NeuronInfoRuntimeApi_get_neurons_lite: ([netuid], state) => this.neurons(state, num(netuid)),
      NeuronInfoRuntimeApi_get_neuron_lite: ([netuid, uid], state) => this.neuron(state, num(netuid), num(uid)),
      NeuronInfoRuntimeApi_get_neurons: ([netuid], state) => this.neurons(state, num(netuid)).map(withoutWeights),
      NeuronInfoRuntimeApi_get_neuron: ([netuid, uid], state) => {
        const n = this.neuron(state, num(netuid), num(uid));
        return n && withoutWeights(n);
      },
      SubnetInfoRuntimeApi_get_subnet_state: ([netuid], state) => this.subnetState(state, num(netuid)),
      SubnetInfoRuntimeApi_get_metagraph: ([netuid], state, block) => this.metagraph(state, num(netuid), block),
      SubnetInfoRuntimeApi_get_selective_mechagraph: ([netuid, mechid, indexes], state, block) =>
        num(mechid) === 0 ? this.selective(state, num(netuid), block, indexes) : null,
      SubnetInfoRuntimeApi_get_selective_metagraph: ([netuid, indexes], state, block) =>
        this.selective(state, num(netuid), block, indexes),
      AccountNonceApi_account_nonce: ([account], state) =>
        (this.store.get(state, 'system', 'account', [account]) as unknown as { nonce: Codec } | null)?.nonce ?? 0,
    };
  }

  /** The SCALE-encoded result of `method` (e.g. "NeuronInfoRuntimeApi_get_neurons_lite") on a block's state. */
  call(method: string, args: Uint8Array, state: State, block: number): Uint8Array {
    if (method.startsWith('Metadata_')) return this.metadataCall(method, args);
    const handler = this.handlers[method];
    const api = this.describe(method);
    if (!handler || !api)
      throw new RuntimeCallError(
        `Exported method ${method} is not found (the devnet serves Metadata, AccountNonceApi, NeuronInfoRuntimeApi and parts of SubnetInfoRuntimeApi)`,
      );
    const decoded: Codec[] = [];
    let offset = 0;
    for (const input of api.inputs) {
      const value = this.types.registry.createTypeUnsafe(this.types.registry.createLookupType(input.type), [
        args.subarray(offset),
      ]);
      offset += value.encodedLength;
      decoded.push(value);
    }
    if (offset !== args.length)
      throw new RuntimeCallError(`${method}: arguments are ${args.length} bytes, its inputs take ${offset}`);
    const output = this.types.registry.createLookupType(api.output);
    return this.types.registry.createTypeUnsafe(output, [handler(decoded, state, block)]).toU8a();
  }

  private metadataCall(method: string, args: Uint8Array): Uint8Array {
    const versions = metadataVersions(this.types);
    if (method === 'Metadata_metadata') {
      const bytes = metadataAtVersion(this.types, versions[0])!;
      return u8aConcat(compactToU8a(bytes.length), bytes);
    }
    if (method === 'Metadata_metadata_versions')
      return u8aConcat(
        compactToU8a(versions.length),
        ...versions.map((v) => bnToU8a(v, { bitLength: 32, isLe: true })),
      );
    if (method === 'Metadata_metadata_at_version') {
      if (args.length !== 4)
        throw new RuntimeCallError(`Metadata_metadata_at_version takes a u32, got ${args.length} bytes`);
      const bytes = metadataAtVersion(this.types, args[0] | (args[1] << 8) | (args[2] << 16) | (args[3] << 24));
      return bytes ? u8aConcat(Uint8Array.from([1]), compactToU8a(bytes.length), bytes) : Uint8Array.from([0]);
    }
    throw new RuntimeCallError(`Exported method ${method} is not found`);
  }

  /** The method's inputs and output as the metadata (v15+) describes them. */
  private describe(method: string) {
    if (this.types.metadata.version < 15) return undefined;
    const split = method.indexOf('_');
    const apis = this.types.metadata.asLatest.apis;
    const api = apis.find((a) => a.name.toString() === method.slice(0, split));
    return api?.methods.find((m) => m.name.toString() === method.slice(split + 1));
  }

  // ---- what the APIs report, read from storage

  private neuron(state: State, netuid: number, uid: number): ReturnType<typeof neuronInfo> | null {
    const n = this.store.number(state, 'subtensorModule', 'subnetworkN', [netuid]);
    return uid < n ? neuronInfo(netuid, this.read(state, netuid)[uid]) : null;
  }

  private neurons(state: State, netuid: number) {
    return this.read(state, netuid).map((n) => neuronInfo(netuid, n));
  }

  /** The subnet's neurons by uid, from Keys, Owner, TotalHotkeyAlpha, Incentive, Emission, LastUpdate, Active. */
  private read(state: State, netuid: number): Neuron[] {
    const s = this.store;
    const n = s.number(state, 'subtensorModule', 'subnetworkN', [netuid]);
    const incentive = s.numbers(state, 'subtensorModule', 'incentive', [netuid]);
    const emission = s.numbers(state, 'subtensorModule', 'emission', [netuid]);
    const lastUpdate = s.numbers(state, 'subtensorModule', 'lastUpdate', [netuid]);
    const active = (s.get(state, 'subtensorModule', 'active', [netuid]) as unknown as { isTrue: boolean }[]) ?? [];
    return Array.from({ length: n }, (_, uid) => {
      const hotkey = s.get(state, 'subtensorModule', 'keys', [netuid, uid])!.toString();
      return {
        hotkey,
        coldkey: s.get(state, 'subtensorModule', 'owner', [hotkey])?.toString() ?? hotkey,
        uid,
        stake: s.number(state, 'subtensorModule', 'totalHotkeyAlpha', [hotkey, netuid]),
        incentive: incentive[uid] ?? 0,
        emission: emission[uid] ?? 0,
        lastUpdate: lastUpdate[uid] ?? 0,
        active: active[uid]?.isTrue ?? false,
        blockAtRegistration: s.number(state, 'subtensorModule', 'blockAtRegistration', [netuid, uid]),
      };
    });
  }

  private subnetState(state: State, netuid: number) {
    if (!this.store.get(state, 'subtensorModule', 'networksAdded', [netuid])) return null;
    const neurons = this.read(state, netuid);
    const each = <T>(f: (n: Neuron) => T) => neurons.map(f);
    return {
      netuid,
      hotkeys: each((n) => n.hotkey),
      coldkeys: each((n) => n.coldkey),
      active: each((n) => n.active),
      validatorPermit: each(() => false),
      pruningScore: each(() => 0),
      lastUpdate: each((n) => n.lastUpdate),
      emission: each((n) => n.emission),
      dividends: each(() => 0),
      incentives: each((n) => n.incentive),
      consensus: each(() => 0),
      trust: each(() => 0),
      rank: each(() => 0),
      blockAtRegistration: each((n) => n.blockAtRegistration),
      // Stake is alpha in the subnet; the devnet has no root (TAO) stake.
      alphaStake: each((n) => n.stake),
      taoStake: each(() => 0),
      totalStake: each((n) => n.stake),
      emissionHistory: [],
    };
  }

  /** The metagraph's fields the devnet knows; the metadata's defaults fill the rest. */
  private metagraph(state: State, netuid: number, block: number): Record<string, unknown> | null {
    const subnet = this.subnetState(state, netuid);
    if (!subnet) return null;
    const lastStep = this.store.number(state, 'subtensorModule', 'lastMechansimStepBlock', [netuid]);
    return {
      ...subnet,
      block,
      tempo: this.store.number(state, 'subtensorModule', 'tempo', [netuid]),
      lastStep,
      blocksSinceLastStep: block - lastStep,
      numUids: subnet.hotkeys.length,
      maxUids: subnet.hotkeys.length,
      registrationAllowed: false,
      identities: subnet.hotkeys.map(() => null),
      axons: subnet.hotkeys.map(() => ({})),
    };
  }

  /** SelectiveMetagraph: the metagraph's field i (in declaration order, 0 = netuid) when i is asked for. */
  private selective(state: State, netuid: number, block: number, indexes: Codec) {
    const full = this.metagraph(state, netuid, block);
    if (!full) return null;
    const wanted = new Set((indexes as unknown as Codec[]).map(num));
    // The struct inside the method's output, Option<SelectiveMetagraph>, with every field None.
    const output = this.describe('SubnetInfoRuntimeApi_get_selective_mechagraph')!.output;
    const type = (
      this.types.registry.createTypeUnsafe(this.types.registry.createLookupType(output), []) as unknown as {
        unwrapOrDefault(): Codec;
      }
    ).unwrapOrDefault();
    const fields = [...(type as unknown as Map<string, Codec>).keys()];
    return Object.fromEntries(
      fields.map((name, i) => {
        if (i === 0) return [name, netuid];
        if (!wanted.has(i)) return [name, null];
        // Some(value), or Some(the type's default) where the devnet has no figure of its own.
        const inner = (type as unknown as Map<string, Codec & { unwrapOrDefault(): Codec }>).get(name)!;
        return [name, name in full ? full[name] : inner.unwrapOrDefault()];
      }),
    );
  }
}

function num(c: Codec): number {
  return (c as unknown as { toNumber(): number }).toNumber();
}

function neuronInfo(netuid: number, n: Neuron) {
  return {
    hotkey: n.hotkey,
    coldkey: n.coldkey,
    uid: n.uid,
    netuid,
    active: n.active,
    axonInfo: {},
    prometheusInfo: {},
    stake: [[n.coldkey, n.stake]],
    incentive: n.incentive,
    emission: n.emission,
    lastUpdate: n.lastUpdate,
  };
}

function withoutWeights(n: ReturnType<typeof neuronInfo>) {
  return { ...n, weights: [], bonds: [] };
}

// The devnet's genesis state: the subnets and the hotkeys registered on them, as subtensor stores
// a registration (NetworksAdded, SubnetworkN, Keys/Uids, the hotkey's owner, its stake, the block it
// registered at), so both @polkadot/api and the Bittensor SDK find the subnet and its neurons.
import type { State, StorageCodec } from './storage';

export interface Registration {
  netuid: number;
  /** The hotkey's ss58 address; uids are given in the order of registration per netuid. */
  address: string;
  /** The hotkey's owner (SubtensorModule.Owner); the hotkey itself when not given. */
  coldkey?: string;
  /** Alpha staked on the hotkey in this subnet, in rao (SubtensorModule.TotalHotkeyAlpha); 0 when not given. */
  stakeRao?: number;
}

export function genesisState(store: StorageCodec, register: Registration[], tempo: number): State {
  const state: State = new Map();
  const netuids = [...new Set(register.map((r) => r.netuid))];
  for (const netuid of netuids) {
    store.put(state, 'subtensorModule', 'tempo', [netuid], tempo);
    if (store.has('subtensorModule', 'networksAdded'))
      store.put(state, 'subtensorModule', 'networksAdded', [netuid], true);
  }
  if (store.has('subtensorModule', 'totalNetworks'))
    store.put(state, 'subtensorModule', 'totalNetworks', [], netuids.length);
  const count = new Map<number, number>();
  for (const r of register) {
    if (store.get(state, 'subtensorModule', 'uids', [r.netuid, r.address])) continue;
    const uid = count.get(r.netuid) ?? 0;
    count.set(r.netuid, uid + 1);
    store.put(state, 'subtensorModule', 'uids', [r.netuid, r.address], uid);
    store.put(state, 'subtensorModule', 'keys', [r.netuid, uid], r.address);
    store.put(state, 'subtensorModule', 'subnetworkN', [r.netuid], uid + 1);
    store.put(state, 'subtensorModule', 'blockAtRegistration', [r.netuid, uid], 0);
    store.put(state, 'subtensorModule', 'owner', [r.address], r.coldkey ?? r.address);
    if (store.has('subtensorModule', 'totalHotkeyAlpha'))
      store.put(state, 'subtensorModule', 'totalHotkeyAlpha', [r.address, r.netuid], r.stakeRao ?? 0);
    store.put(state, 'system', 'account', [r.address], { nonce: 0, providers: 1 });
  }
  for (const netuid of netuids)
    store.put(state, 'subtensorModule', 'active', [netuid], new Array<boolean>(count.get(netuid) ?? 0).fill(true));
  store.put(state, 'system', 'number', [], 0);
  // A genesis that depends only on the configuration, as a real chain spec's does: a devnet
  // restarted with the same settings has the same genesis hash, so clients' signatures stay valid.
  store.put(state, 'timestamp', 'now', [], 0);
  return state;
}

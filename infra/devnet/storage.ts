// Storage keys and values of the devnet's state, built from the metadata exactly as subtensor
// encodes them: a key is the pallet and item hashes plus the hashed arguments, a value is SCALE.
import type { Codec } from '@polkadot/types/types';
import type { StorageEntry } from '@polkadot/types/primitive/types';
import { compactStripLength, hexToU8a, u8aToHex } from '@polkadot/util';
import type { SubtensorTypes } from './metadata';

/** Key hex → SCALE value hex: one block's state. */
export type State = Map<string, string>;

export class StorageCodec {
  constructor(private readonly types: SubtensorTypes) {}

  /** Whether this runtime has the storage item (older metadata lacks dTAO's items). */
  has(section: string, method: string): boolean {
    return !!(this.types.decorated.query as unknown as Record<string, Record<string, StorageEntry>>)[section]?.[method];
  }

  private entry(section: string, method: string): StorageEntry {
    const entry = (this.types.decorated.query as unknown as Record<string, Record<string, StorageEntry>>)[section]?.[
      method
    ];
    if (!entry) throw new Error(`devnet: the metadata has no storage item ${section}.${method}`);
    return entry;
  }

  key(section: string, method: string, args: unknown[]): string {
    const entry = this.entry(section, method);
    // The decorated entry returns the key with a compact length prefix (as @polkadot/types stores it); storage keys have none.
    return u8aToHex(compactStripLength(entry(...(entry.meta.type.isPlain ? [] : args)))[1]);
  }

  private valueType(section: string, method: string): string {
    const t = this.entry(section, method).meta.type;
    return this.types.registry.createLookupType(t.isPlain ? t.asPlain : t.asMap.value);
  }

  put(state: State, section: string, method: string, args: unknown[], value: unknown): void {
    // toU8a, not toHex: a number's toHex is big-endian, SCALE is little-endian.
    state.set(
      this.key(section, method, args),
      u8aToHex(this.types.registry.createTypeUnsafe(this.valueType(section, method), [value]).toU8a()),
    );
  }

  /** The decoded value, or null when unset. */
  get(state: State, section: string, method: string, args: unknown[]): Codec | null {
    const hex = state.get(this.key(section, method, args));
    return hex === undefined
      ? null
      : this.types.registry.createTypeUnsafe(this.valueType(section, method), [hexToU8a(hex)]);
  }

  /** A number stored at the key (u16/u32/u64), or `fallback` when unset. */
  number(state: State, section: string, method: string, args: unknown[], fallback = 0): number {
    const value = this.get(state, section, method, args) as unknown as { toNumber(): number } | null;
    return value ? value.toNumber() : fallback;
  }

  /** A vector of numbers (Incentive, LastUpdate, ...), empty when unset. */
  numbers(state: State, section: string, method: string, args: unknown[]): number[] {
    const value = this.get(state, section, method, args) as unknown as { toNumber(): number }[] | null;
    return value ? value.map((v) => v.toNumber()) : [];
  }
}

/** The feature store's public interface (see store.ts). */
export { FeatureStore, ImageSkipError } from './store.js';
export { FeatureCache, FEATURE_CACHE_VERSION, cacheIdentity, contentHash, entryChecksum, type CacheRead } from './cache.js';
export { stackStages, stackTokens, plainFeatures, type FeatureAlloc } from './stack.js';
export * from './types.js';

/**
 * Prometheus metrics of one service instance (its own registry, not prom-client's global one):
 * requests by route and status, request latency, queue depth, images scored by verdict, build
 * jobs, and the process metrics prom-client collects (RSS, heap, event-loop lag, ...).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface ServiceMetrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  latency: Histogram<'method' | 'route'>;
  imagesScored: Counter<'verdict'>;
  rejected: Counter<'reason'>;
  jobs: Counter<'state'>;
}

export function createMetrics(queueDepth: () => number, queueRunning: () => number, banksLoaded: () => number): ServiceMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'musc_' });
  const requests = new Counter({
    name: 'musc_http_requests_total',
    help: 'HTTP requests answered',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'musc_http_request_duration_seconds',
    help: 'time from request to response',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  new Gauge({
    name: 'musc_queue_depth',
    help: 'predictions admitted (waiting or computing)',
    registers: [registry],
    collect() {
      this.set(queueDepth());
    },
  });
  new Gauge({
    name: 'musc_queue_running',
    help: 'predictions being computed',
    registers: [registry],
    collect() {
      this.set(queueRunning());
    },
  });
  new Gauge({
    name: 'musc_banks_loaded',
    help: 'banks loaded',
    registers: [registry],
    collect() {
      this.set(banksLoaded());
    },
  });
  const imagesScored = new Counter({
    name: 'musc_images_scored_total',
    help: 'images scored',
    labelNames: ['verdict'] as const,
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'musc_rejected_total',
    help: 'requests refused before scoring',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const jobs = new Counter({
    name: 'musc_build_jobs_total',
    help: 'bank build jobs by final state',
    labelNames: ['state'] as const,
    registers: [registry],
  });
  return { registry, requests, latency, imagesScored, rejected, jobs };
}

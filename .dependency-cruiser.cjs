/**
 * The layers, checked (test/unit/layers.test.ts runs this on every test run):
 *   shared ← models ← coordinator / node-agent, and the CLI (coordinator/cli) is the composition
 *   root, the one place that starts both a coordinator and an agent. The client (coordinator/client,
 *   `prescient/client`) stays light: shared/, the bus and NATS only.
 * deploy/ (the local stack) sits beside shared: anything may start the stack, it imports no layer above shared.
 */
module.exports = {
  forbidden: [
    { name: 'shared-is-the-base', severity: 'error', comment: 'shared/ holds types, validation and the API: it imports no other layer',
      from: { path: '^shared/' }, to: { path: '^(models|coordinator|node-agent|deploy)/' } },
    { name: 'models-below-services', severity: 'error', comment: 'models/ knows features and networks, not the services that use them',
      from: { path: '^models/' }, to: { path: '^(coordinator|node-agent|deploy)/' } },
    { name: 'agent-not-coordinator', severity: 'error', comment: 'an agent talks to the coordinator through the shared gRPC API only',
      from: { path: '^node-agent/' }, to: { path: '^coordinator/' } },
    { name: 'coordinator-not-agent', severity: 'error', comment: 'only the CLI (the composition root) starts agents',
      from: { path: '^coordinator/', pathNot: '^coordinator/cli/' }, to: { path: '^node-agent/' } },
    { name: 'stack-is-below-services', severity: 'error', comment: 'deploy/ starts services; it does not import them',
      from: { path: '^deploy/' }, to: { path: '^(models|coordinator|node-agent)/' } },
    { name: 'client-is-light', severity: 'error', comment: 'the client (`prescient/client`) loads NATS, shared/ and the bus only: no models, agent, CLI, leader or heavy SDK',
      from: { path: '^coordinator/client/' }, to: { path: '^(models|node-agent|deploy)/|^coordinator/(?!client/|bus/)|node_modules/(brain\\.js|@grpc|consul|piscina|@questdb|@aws-sdk|@google-cloud|@azure|prom-client)/' } },
    { name: 'core-does-no-io', severity: 'error', comment: 'the leader\'s core is pure: no NATS, gRPC, files or its shell',
      from: { path: '^coordinator/core/' }, to: { path: '^(coordinator/(leader|bus|election|burst|cli)/|node_modules/(nats|@grpc)/)|^(fs|node:fs|child_process|node:child_process|net|node:net)$' } },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|test)/' },
  },
};

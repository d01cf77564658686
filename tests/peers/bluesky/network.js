// Starts a real Bluesky PDS and PLC (@atproto/dev-env's TestNetworkNoAppView, on SQLite in
// temporary folders) for Herald's tests: `node network.js PDS_PORT PLC_PORT`. Prints one JSON
// line {"pds": url, "plc": url} once both answer, and shuts down when stdin closes.
const { TestNetworkNoAppView } = require('@atproto/dev-env')

async function main() {
  const [pdsPort, plcPort] = process.argv.slice(2).map(Number)
  const network = await TestNetworkNoAppView.create({
    pds: { port: pdsPort },
    plc: { port: plcPort },
  })
  process.stdout.write(JSON.stringify({ pds: network.pds.url, plc: network.plc.url }) + '\n')
  const stop = async () => {
    await network.close()
    process.exit(0)
  }
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.resume()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})

// Reads a JSON array of strings on stdin; prints the JSON array of their weighted lengths as
// the official twitter-text library (parseTweet, default v3 config) counts them.
const twitter = require('twitter-text')

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => (input += chunk))
process.stdin.on('end', () => {
  const texts = JSON.parse(input)
  process.stdout.write(JSON.stringify(texts.map((t) => twitter.parseTweet(t).weightedLength)))
})

// Reads a JSON array of strings on stdin; prints the JSON array of what the official
// twitter-text library's parseTweet (default v3 config) answers for each: weightedLength,
// valid, permillage and the valid and display ranges (UTF-16 indices).
const twitter = require('twitter-text')

let input = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => (input += chunk))
process.stdin.on('end', () => {
  const texts = JSON.parse(input)
  process.stdout.write(JSON.stringify(texts.map((t) => twitter.parseTweet(t))))
})

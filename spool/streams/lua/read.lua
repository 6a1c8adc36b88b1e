-- What XREAD answers for the streams KEYS (of one slot) after the cursors
-- ARGV (spool/streams/reads.py): the TailHub's read on a cluster, where
-- redis-py routes XREAD (whose keys move) only after asking a node COMMAND
-- GETKEYS, and a script, which names its keys, can be sent to their node
-- directly. Nil when no stream has entries past its cursor.
local call = {'XREAD', 'STREAMS'}
for i = 1, #KEYS do call[#call + 1] = KEYS[i] end
for i = 1, #ARGV do call[#call + 1] = ARGV[i] end
return redis.call(unpack(call))

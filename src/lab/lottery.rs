//! The two lotteries as per-round leader elections: whoever produces the
//! block of a round leads that round, and fork choice settles competing
//! blocks.
//!
//! - **PoW** is not simulated by hashing. Each node's time to a solution is
//!   exponential with rate `hashrate / total × 1 / block_interval`, which is
//!   exactly what independent hash trials with a fixed target give.
//!   Memorylessness means a node that switches to a new tip need not restart
//!   its clock. The winner broadcasts its block. Fork choice: the most work,
//!   here the greatest height (constant difficulty); a tie keeps the block
//!   seen first.
//! - **PoS** uses klero's draw rules from `klero-chain`: in every slot each
//!   live staker turns a 64-byte VRF output into `score = -ln(u) / stake`
//!   (`draw::score`) and proposes if `draw::is_eligible` at the failover step
//!   `pos::failover_step`, with `c = 3` and up to 8 steps. The VRF is
//!   replaced by 64 bytes from the seeded generator: same distribution,
//!   no keys. Fork choice is klero's: greater height, then the earlier slot,
//!   then the lower score. Here it compares tips, which is exact for forks
//!   one block deep.
//! - Blocks spread as in klero's gossip: the producer sends its block to
//!   every node, and a node relays a block that became its tip to
//!   [`RELAY_FANOUT`] random peers (gossipsub's mesh degree), so a lost copy
//!   is usually made up by a relay.
//! - The leader of a round is the author of the block of that round. A node
//!   names it as long as that block is its tip (PoW) or while that slot lasts
//!   (PoS). A restarted node produces nothing until a block has told it the
//!   tip.

use klero_chain::draw::{self, Score};
use klero_chain::pos;
use klero_chain::spec::PosParams;

use super::metrics::Kind;
use super::rng::Rng;
use super::sim::{Ctx, Env, Message, NodeId, Protocol, Time};

/// Peers a node relays a new tip to: gossipsub's default mesh degree.
pub(crate) const RELAY_FANOUT: usize = 6;

/// A block, reduced to what leader election and fork choice read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Block {
    /// Chain height.
    pub height: u64,
    /// PoS slot (0 for PoW).
    pub slot: u64,
    /// The producer.
    pub author: NodeId,
    /// PoS: `-ln(u)` of the VRF output in Q64.64 (0 for PoW).
    pub neg_ln: u128,
    /// PoS: the author's stake (0 for PoW).
    pub stake: u64,
}

impl Block {
    fn score(&self) -> Score {
        Score::new(self.neg_ln, self.stake)
    }
}

/// The only lottery message: a new block, flooded to all nodes.
#[derive(Clone, Debug, Hash)]
pub(crate) struct Msg(pub Block);

impl Message for Msg {
    fn kind(&self) -> &'static str {
        "BLOCK"
    }
}

/// Lottery timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// PoW: this node's puzzle is solved.
    Solve,
    /// PoS: a slot starts.
    Slot,
}

type Cx<'a> = Ctx<'a, Msg, Timer>;

/// What both lotteries share: the node's tip and whether it has synced.
#[derive(Debug)]
struct Chain {
    id: NodeId,
    weight: u64,
    tip: Option<Block>,
    synced: bool,
}

impl Chain {
    fn new(id: NodeId, env: &Env) -> Chain {
        Chain {
            id,
            weight: env.weights[id as usize],
            tip: None,
            synced: true,
        }
    }

    fn height(&self) -> u64 {
        self.tip.map_or(0, |b| b.height)
    }

    /// Produces and floods a block on the current tip.
    fn produce(&mut self, ctx: &mut Cx<'_>, slot: u64, neg_ln: u128, stake: u64, round: u64) {
        let block = Block {
            height: self.height() + 1,
            slot,
            author: self.id,
            neg_ln,
            stake,
        };
        self.tip = Some(block);
        ctx.block_produced(round);
        ctx.broadcast(&Msg(block));
    }

    /// Fork choice: `better` decides between blocks of equal height. A block
    /// that becomes the tip is relayed; any other is dropped, as gossip
    /// ignores duplicates and stale blocks.
    fn receive(
        &mut self,
        ctx: &mut Cx<'_>,
        from: NodeId,
        block: Block,
        better: impl Fn(&Block, &Block) -> bool,
    ) {
        self.synced = true;
        let switch = match self.tip {
            None => true,
            Some(tip) => block.height > tip.height || (block.height == tip.height && better(&block, &tip)),
        };
        if !switch {
            return;
        }
        self.tip = Some(block);
        let n = ctx.env().n as u64;
        let mut peers = Vec::with_capacity(RELAY_FANOUT);
        while peers.len() < RELAY_FANOUT.min(ctx.env().n - 2) {
            let peer = ctx.rng().below(n) as NodeId;
            if peer != self.id && peer != from && !peers.contains(&peer) {
                peers.push(peer);
                ctx.send(peer, Msg(block));
            }
        }
    }
}

/// A PoW miner.
#[derive(Debug)]
pub(crate) struct Pow {
    chain: Chain,
}

impl Pow {
    fn arm(&self, ctx: &mut Cx<'_>) {
        let env = ctx.env();
        let mean = env.timing.block_interval as f64 * env.total_weight as f64 / self.chain.weight as f64;
        let delay = ctx.rng().exp(mean).round() as Time;
        ctx.set_timer(delay, Timer::Solve);
    }
}

impl Protocol for Pow {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Lottery;

    fn new(id: NodeId, env: &Env, _: &mut Rng) -> Pow {
        Pow {
            chain: Chain::new(id, env),
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        self.arm(ctx);
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, Msg(block): Msg) {
        let was_synced = self.chain.synced;
        // First seen stays: no tie-break beyond height.
        self.chain.receive(ctx, from, block, |_, _| false);
        if !was_synced {
            self.arm(ctx);
        }
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, _: Timer) {
        let round = self.chain.height() + 1;
        self.chain.produce(ctx, 0, 0, 0, round);
        self.arm(ctx);
    }

    fn on_crash(&mut self) {
        self.chain.synced = false;
    }

    fn on_recover(&mut self, _: &mut Cx<'_>) {}

    fn leader(&self) -> Option<(NodeId, u64)> {
        self.chain.tip.map(|b| (b.author, b.height))
    }
}

/// A PoS staker.
#[derive(Debug)]
pub(crate) struct Pos {
    chain: Chain,
    params: PosParams,
    slot: u64,
}

impl Pos {
    fn arm(ctx: &mut Cx<'_>) {
        let slot = ctx.env().timing.slot;
        ctx.set_timer(slot - ctx.now() % slot, Timer::Slot);
    }
}

impl Protocol for Pos {
    type Msg = Msg;
    type Timer = Timer;
    const KIND: Kind = Kind::Lottery;

    fn new(id: NodeId, env: &Env, _: &mut Rng) -> Pos {
        Pos {
            chain: Chain::new(id, env),
            // klero's development draw (`testnet/pos.toml`); only its draw fields matter.
            params: PosParams::dev(env.timing.slot / 1_000),
            slot: 0,
        }
    }

    fn on_start(&mut self, ctx: &mut Cx<'_>) {
        Pos::arm(ctx);
    }

    fn on_message(&mut self, ctx: &mut Cx<'_>, from: NodeId, Msg(block): Msg) {
        self.chain.receive(ctx, from, block, |new, tip| {
            (new.slot, new.score()) < (tip.slot, tip.score())
        });
    }

    fn on_timer(&mut self, ctx: &mut Cx<'_>, _: Timer) {
        Pos::arm(ctx);
        self.slot = ctx.now() / ctx.env().timing.slot;
        ctx.round_opened(self.slot);
        if !self.chain.synced {
            return;
        }
        let parent_slot = self.chain.tip.map_or(0, |b| b.slot);
        let step = pos::failover_step(&self.params, self.slot, parent_slot);
        let mut vrf_output = [0u8; 64];
        ctx.rng().fill(&mut vrf_output);
        let score = draw::score(&vrf_output, self.chain.weight);
        let total = ctx.env().total_weight;
        if draw::is_eligible(&score, total, self.params.leader_c_milli, step) {
            self.chain
                .produce(ctx, self.slot, score.neg_ln(), score.stake(), self.slot);
        }
    }

    fn on_crash(&mut self) {
        self.chain.synced = false;
    }

    fn on_recover(&mut self, ctx: &mut Cx<'_>) {
        Pos::arm(ctx);
    }

    fn leader(&self) -> Option<(NodeId, u64)> {
        self.chain
            .tip
            .filter(|b| b.slot == self.slot)
            .map(|b| (b.author, b.slot))
    }
}

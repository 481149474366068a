"""The Uniswap V2 Router02 and pair functions the agent calls, named as in their source.

The argument names give the roles the guard reads (`defiagent.guard.conventions`).
"""

SWAP_EXACT_IN = (
    "swapExactTokensForTokens(uint256 amountIn,uint256 amountOutMin,address[] path,"
    "address to,uint256 deadline)"
)
# Router02's twin of swapExactTokensForTokens for tokens that keep a fee on transfers: the
# same arguments, but it swaps what each pool actually received and checks amountOutMin
# against the balance the recipient actually gained.
SWAP_EXACT_IN_FOT = (
    "swapExactTokensForTokensSupportingFeeOnTransferTokens(uint256 amountIn,"
    "uint256 amountOutMin,address[] path,address to,uint256 deadline)"
)
SWAP_EXACT_OUT = (
    "swapTokensForExactTokens(uint256 amountOut,uint256 amountInMax,address[] path,"
    "address to,uint256 deadline)"
)
ADD_LIQUIDITY = (
    "addLiquidity(address tokenA,address tokenB,uint256 amountADesired,uint256 amountBDesired,"
    "uint256 amountAMin,uint256 amountBMin,address to,uint256 deadline)"
)
REMOVE_LIQUIDITY = (
    "removeLiquidity(address tokenA,address tokenB,uint256 liquidity,uint256 amountAMin,"
    "uint256 amountBMin,address to,uint256 deadline)"
)
PAIR_APPROVE = "approve(address spender,uint256 value)"  # LP tokens, to remove liquidity
